"""What one server process does: `rakuten serve --role predict|writer|all` (RAKUTEN_ROLE).

predict  stateless and replicable: log in, predict, describe the model, health, reload the model.
         It reads the project (model, users file) and writes nothing there.
writer   the one owner of the project: ingest into data/raw, run `dvc repro` (/train), the gated
         retrain (/retrain), reload.
all      both, in one process: a laptop's server (the default).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

from mlops_rakuten.core.errors import InputError
from mlops_rakuten.serve.settings import Settings

ROLE_ENV = "RAKUTEN_ROLE"
# A predict replica with its own state folder reads the writer's "new model" marker from the writer's.
WRITER_STATE_ENV = "RAKUTEN_WRITER_STATE_DIR"
ROLES = ("all", "predict", "writer")


def role(env: dict[str, str] | None = None) -> str:
    value = (os.environ if env is None else env).get(ROLE_ENV) or "all"
    if value not in ROLES:
        raise InputError(f"{ROLE_ENV} = {value!r}, expected one of {', '.join(ROLES)}")
    return value


# The route table, in the API's order. A router is either shared, or one role's own: the writer's own are
# the one place that decides what nginx sends to the writer (``nginx_writer_location`` derives the regex;
# tests/test_serve_roles.py checks deployments/nginx/nginx.conf against it and walks every route of the
# API through the real nginx).
ROUTERS = ("token", "predict", "info", "ingest", "train", "retrain", "reload", "health")
OWN = {"predict": ("predict",), "writer": ("ingest", "train", "retrain")}


def routers(name: str) -> tuple[ModuleType, ...]:
    """The routers a server of role ``name`` mounts (/metrics and /health come with every role)."""
    from mlops_rakuten.serve.routers import health, info, ingest, predict, reload, retrain, token, train

    modules = dict(zip(ROUTERS, (token, predict, info, ingest, train, retrain, reload, health), strict=True))
    others = {router for role, own in OWN.items() if role != name for router in own} if name in OWN else set()
    return tuple(modules[router] for router in ROUTERS if router not in others)


def writer_prefixes() -> list[str]:
    """The first path segment of every route only the writer has (/train/{job_id}: "train"), sorted."""
    writer_only = [module for module in routers("writer") if module.__name__.rpartition(".")[2] in OWN["writer"]]
    return sorted({route.path.split("/")[1] for module in writer_only for route in module.router.routes})


def nginx_writer_location() -> str:
    """nginx's location regex for the writer's own routes: their first segment, alone or followed by a slash."""
    return f"^/({'|'.join(writer_prefixes())})(/|$)"


def writes_project(name: str) -> bool:
    """Whether this role may change the project (finish an ingest, settle a training run, restore a model)."""
    return name != "predict"


MARKER = "model.published"


def published_marker(settings: Settings) -> Path:
    """The file the writer rewrites when /train produced a model (serve/model.py): every role watches it."""
    return Path(os.environ.get(WRITER_STATE_ENV) or settings.state_dir) / MARKER


def model_markers(settings: Settings) -> tuple[Path, tuple[Path, ...]]:
    """(the marker this server writes, the other server's it only watches) for serve/model.py's ModelHolder.

    Each server writes only its own state folder: a predict replica's /reload tells its own workers
    through its own marker, and learns of the writer's new models from the writer's.
    """
    own, writer = settings.state_dir / MARKER, published_marker(settings)
    return own, (() if writer == own else (writer,))


if __name__ == "__main__":  # deployments/nginx/nginx.conf's writer location, from the route table
    print(nginx_writer_location())
