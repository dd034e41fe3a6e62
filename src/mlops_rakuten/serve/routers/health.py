"""GET /health and GET /metrics: no token, for load balancers and Prometheus (nginx hides /metrics)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health(request: Request) -> dict:
    """Alive; and whether a model is loaded (a fresh project has none until `dvc repro`).

    "degraded": the users file on disk is refused and logins use the last good list. Why (its
    path, a user's name) is for the log and for admins on /info, not for anyone who asks.

    async: answered on the event loop, so a thread pool busy with slow requests cannot delay it.
    """
    state = request.app.state
    # Details (the users file's path, a registry error) go to the log and to admins' /info, not here.
    users_error = state.users.file_error()
    registry_error = state.follower.error if state.follower else None
    degraded = bool(users_error or registry_error)
    return {"status": "degraded" if degraded else "ok", "model_ready": state.model.current() is not None}


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
