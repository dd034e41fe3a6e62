"""GET /health and GET /metrics: no token, for load balancers and Prometheus (nginx hides /metrics)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health(request: Request) -> dict:
    """Alive; and whether a model is loaded (a fresh project has none until `dvc repro`).

    async: answered on the event loop, so a thread pool busy with slow requests cannot delay it.
    """
    state = request.app.state
    users_error = state.users.file_error()  # an invalid users file: logins use the last good list
    answer = {"status": "degraded" if users_error else "ok", "model_ready": state.model.current() is not None,
              "users_file_error": users_error}
    if state.follower:  # a registry version that cannot be fetched, verified or loaded: the previous one serves
        answer["registry_error"] = state.follower.error
        answer["status"] = "degraded" if users_error or state.follower.error else "ok"
    return answer


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
