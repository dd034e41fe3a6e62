"""What one server process does: `rakuten serve --role predict|writer|all` (RAKUTEN_ROLE).

predict  stateless and replicable: log in, predict, describe the model, health, reload the model.
         It reads the project (model, users file) and writes nothing there.
writer   the one owner of the project: ingest into data/raw, run `dvc repro` (/train), reload.
all      both, in one process: a laptop's server (the default).
"""

from __future__ import annotations

import os
from types import ModuleType

from mlops_rakuten.errors import InputError

ROLE_ENV = "RAKUTEN_ROLE"
ROLES = ("all", "predict", "writer")


def role(env: dict[str, str] | None = None) -> str:
    value = (os.environ if env is None else env).get(ROLE_ENV) or "all"
    if value not in ROLES:
        raise InputError(f"{ROLE_ENV} = {value!r}, expected one of {', '.join(ROLES)}")
    return value


def routers(name: str) -> tuple[ModuleType, ...]:
    """The routers a server of role ``name`` mounts (/metrics and /health come with every role)."""
    from mlops_rakuten.serve.routers import health, info, ingest, predict, reload, token, train

    if name == "predict":
        return token, predict, info, reload, health
    if name == "writer":
        return token, info, ingest, train, reload, health
    return token, predict, info, ingest, train, reload, health


def writes_project(name: str) -> bool:
    """Whether this role may change the project (finish an ingest, settle a training run, restore a model)."""
    return name != "predict"
