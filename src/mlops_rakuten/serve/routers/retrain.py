"""POST /retrain and GET /retrain/{job_id}: `rakuten retrain`, registered only if not worse than production."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status

from mlops_rakuten.serve.auth import require_admin
from mlops_rakuten.serve.guard import NO_BODY_MAX_BYTES, body_limit
from mlops_rakuten.serve.project import Busy
from mlops_rakuten.serve.responses import responses
from mlops_rakuten.serve.users import User

router = APIRouter(tags=["train"])


@router.post(
    "/retrain",
    status_code=status.HTTP_202_ACCEPTED,
    openapi_extra=body_limit(NO_BODY_MAX_BYTES),
    responses=responses(400, 401, 403, 409, 413),
)
def retrain(request: Request, _: Annotated[User, Depends(require_admin)]) -> dict:
    """Build a candidate from data/raw and compare it with rakuten-classifier#prod on the frozen evaluation
    set and the new products (docs/monitoring.md); poll status_url. ``outcome``: registered, refused,
    not_registered, no_new_data (nothing built) or failed."""
    try:
        job = request.app.state.retrain_jobs.start()
    except Busy as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return {"job_id": job["id"], "status": job["status"], "status_url": f"/retrain/{job['id']}"}


@router.get("/retrain/{job_id}", responses=responses(400, 401, 403, 404, 413))
def retrain_status(job_id: str, request: Request, _: Annotated[User, Depends(require_admin)]) -> dict:
    job = request.app.state.retrain_jobs.get(job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no retrain job {job_id!r}")
    return job
