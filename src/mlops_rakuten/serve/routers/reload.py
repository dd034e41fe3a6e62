"""POST /reload (admin): look at the registry now, or re-read the workspace model; what a CI job calls
after `gto assign`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

from mlops_rakuten.serve.auth import require_admin
from mlops_rakuten.serve.guard import NO_BODY_MAX_BYTES, body_limit
from mlops_rakuten.serve.responses import Error, responses
from mlops_rakuten.serve.users import User

router = APIRouter(tags=["operations"])


def _reload(state: State) -> dict:
    follower = state.follower
    if follower is None:  # the workspace model: read the file again, and have the other workers do so
        if not state.model.load():
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, detail=f"model not reloaded: {state.model.error}")
        state.model.publish()
        loaded = state.model.loaded
        return {"md5": loaded.md5, "version": None, "error": None}
    outcome = follower.check(wait=True, force=True)
    follower.sync()  # this worker at once; the others within a second
    if outcome.get("error"):
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, detail=outcome["error"])
    served = follower.served
    return {"md5": served["md5"], "version": served["version"], "since": served["since"], "error": None}


_FAILED = {"model": Error, "description": "that version could not be fetched, verified or loaded; the old one serves"}


@router.post("/reload", openapi_extra=body_limit(NO_BODY_MAX_BYTES), responses=responses(401, 403, **{"502": _FAILED}))
async def reload(request: Request, _: Annotated[User, Depends(require_admin)]) -> dict:
    """The model the registry stage names now (fetched, verified, loaded), or the workspace model again.

    502 with the reason when that version cannot be fetched, verified or loaded: the old one keeps serving.
    """
    return await run_in_threadpool(_reload, request.app.state)
