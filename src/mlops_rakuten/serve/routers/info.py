"""GET /info: which model, trained on which data, with which params, scoring what, from which commit."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from mlops_rakuten.serve.auth import require_user
from mlops_rakuten.serve.project import (
    data_version,
    git_commit,
    is_locked,
    locked_model_md5,
    model_params,
    read_metrics,
)
from mlops_rakuten.serve.responses import responses
from mlops_rakuten.serve.settings import MODEL_PATH
from mlops_rakuten.serve.users import User

router = APIRouter(tags=["info"])


# Why a model or a registry version failed names the server's own paths: for admins only, as is the users
# file's problem. Others see that it failed (``ready``, /health's "degraded"), not why.
ADMIN_ONLY = "error"


@router.get("/info", responses=responses(400, 401, 403, 413))
def info(request: Request, user: Annotated[User, Depends(require_user)]) -> dict:
    state = request.app.state
    root = state.settings.project_dir
    loaded = state.model.current()
    follower = state.follower  # `rakuten serve --model NAME#STAGE`: a registry version, maybe followed
    registry = follower.served if follower else state.settings.registry_model
    recorded = registry["md5"] if registry else locked_model_md5(root)
    admin = user.can("admin")
    model = {
        "ready": loaded is not None,
        "path": MODEL_PATH if not registry else registry["path"],
        "md5": recorded,  # dvc.lock's word for the train stage's output (at the version's commit)
        "registry": {
            **{key: registry.get(key) for key in ("reference", "name", "version", "stages", "commit", "since")},
            **follower.describe(),
        }
        if registry
        else None,
        "loaded_md5": loaded.md5 if loaded else None,
        # False when the served model is not the recorded one: a run whose train stage succeeded but
        # whose evaluate failed (the old model keeps serving), or a hand-edited workspace.
        "matches_dvc_lock": loaded is not None and loaded.md5 == recorded,
        "loaded_at": loaded.loaded_at if loaded else None,
        "load_seconds": loaded.load_seconds if loaded else None,
        "error": state.model.error,
    }
    if not admin:
        model.pop(ADMIN_ONLY)
        if model["registry"]:
            model["registry"].pop(ADMIN_ONLY)
    return {
        "model": model,
        "data": data_version(root),
        # A registry model's own params and metrics (at its version's commit), else the workspace's.
        "params": registry["params"] if registry else model_params(root),
        "metrics": registry["metrics"] if registry else read_metrics(root),
        "git_commit": git_commit(root),
        "busy": is_locked(state.settings.state_dir),  # a training run or an ingest is under way
        # status "interrupted": the server stopped mid-run; the last good model kept serving.
        "last_training": state.jobs.latest(),
        # Why /health says "degraded" (the users file's path, a user's name): for admins only.
        **({"users_file_error": state.users.file_error()} if admin else {}),
    }
