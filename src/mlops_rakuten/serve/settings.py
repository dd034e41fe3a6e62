"""Server settings, all from the environment, so no secret ever sits in a file of the repo.

RAKUTEN_JWT_SECRET      signs the bearer tokens (required, >= 32 characters; e.g. `openssl rand -hex 32`)
RAKUTEN_PROJECT_DIR     the DVC project served (where dvc.yaml lives; default: the current folder)
RAKUTEN_USERS_FILE      users and argon2 hashes (default: PROJECT/secrets/users.json, git-ignored)
RAKUTEN_STATE_DIR       training jobs, locks, metrics files (default: PROJECT/.dvc/tmp/serve, which DVC's
                        own .gitignore already ignores)
RAKUTEN_TOKEN_MINUTES   token lifetime (default 30)
RAKUTEN_LOGIN_PER_MINUTE           POST /token attempts per client address and minute (default 20)
RAKUTEN_LOGIN_FAILURES_PER_MINUTE  failed POST /token attempts per user name and minute (default 5)
RAKUTEN_MODEL           a model registry reference to serve instead of the workspace model, e.g.
                        rakuten-classifier#prod (same as `rakuten serve --model`; docs/team.md)
RAKUTEN_TRUSTED_PROXIES addresses and networks whose X-Forwarded-For is believed (default 127.0.0.1: nginx
                        on the same host; the container stack sets * because only its nginx can reach the
                        API); the client is the nearest entry that is no trusted proxy (serve/forwarded.py)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlops_rakuten.core import paths
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.ops import ingest, upload
from mlops_rakuten.ops.project_lock import state_dir

MIN_SECRET_CHARS = 32  # HS256 wants a key at least as long as its 32-byte hash (RFC 7518 3.2)

# What the server reads in the project; the same paths dvc.yaml names.
PIPELINE_FILE, DVC_LOCK = paths.PIPELINE, paths.DVC_LOCK
MODEL_PATH, METRICS_PATH = paths.MODEL, paths.METRICS
RAW_DIR, RAW_POINTER = paths.RAW_DIR, paths.RAW_POINTER
MODEL_REFERENCE_ENV = "RAKUTEN_MODEL"
TRUSTED_PROXIES_ENV = "RAKUTEN_TRUSTED_PROXIES"
# The registry model `rakuten serve` fetched (JSON of registry.ResolvedModel), for its workers to load.
RESOLVED_MODEL_ENV = "RAKUTEN_MODEL_RESOLVED"

# Limits that keep one request from hogging a worker, the same for /predict as for an upload's rows.
MAX_DESIGNATION_CHARS, MAX_DESCRIPTION_CHARS = upload.MAX_DESIGNATION_CHARS, upload.MAX_DESCRIPTION_CHARS
MAX_UPLOAD_BYTES = 20 * 2**20  # nginx's client_max_body_size matches
# POST /predict takes one product or a list of up to MAX_PREDICT_PRODUCTS; its body is capped at
# PREDICT_MAX_BYTES (one product at the character limits fits even with every character JSON-escaped).
MAX_PREDICT_PRODUCTS = 64
PREDICT_MAX_BYTES = 2 * 2**20
TOKEN_MAX_BYTES = 4 * 2**10  # a user name and a password, form-encoded


@dataclass(frozen=True)
class Settings:
    jwt_secret: str
    project_dir: Path
    users_file: Path
    state_dir: Path
    token_minutes: int = 30
    login_per_minute: int = 20
    login_failures_per_minute: int = 5
    registry_model: dict | None = None  # name, version, stages, commit, md5, path of a fetched registry model
    trusted_proxies: str = "127.0.0.1"

    @property
    def model_path(self) -> Path:
        if self.registry_model:
            return Path(self.registry_model["path"])
        return self.project_dir / MODEL_PATH

    @property
    def raw_dir(self) -> Path:
        return self.project_dir / RAW_DIR

    @property
    def raw_staging(self) -> Path:
        return ingest.raw_staging(self.project_dir)

    @property
    def ingest_keys(self) -> Path:
        return ingest.ingest_keys(self.project_dir)


def project_dir(env: Mapping[str, str]) -> Path:
    return Path(env.get("RAKUTEN_PROJECT_DIR") or Path.cwd()).resolve()


def users_file(env: Mapping[str, str]) -> Path:
    """Where the users live; `rakuten user add` needs this without the JWT secret."""
    return Path(env.get("RAKUTEN_USERS_FILE") or project_dir(env) / "secrets" / "users.json")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``environ`` (default os.environ); InputError when the secret is missing or weak."""
    env = os.environ if environ is None else environ
    secret = env.get("RAKUTEN_JWT_SECRET", "")
    if len(secret) < MIN_SECRET_CHARS:
        state = "not set" if not secret else f"only {len(secret)} characters"
        raise InputError(
            f"RAKUTEN_JWT_SECRET is {state}: the server needs a secret of at least "
            f"{MIN_SECRET_CHARS} characters to sign tokens (e.g. `export RAKUTEN_JWT_SECRET="
            f"$(openssl rand -hex 32)`)"
        )
    project = project_dir(env)
    if not (project / PIPELINE_FILE).is_file():
        raise InputError(f"{project}: no dvc.yaml (set RAKUTEN_PROJECT_DIR to the project folder)")
    return Settings(
        jwt_secret=secret,
        project_dir=project,
        users_file=users_file(env),
        state_dir=state_dir(project, env),
        token_minutes=_positive(env, "RAKUTEN_TOKEN_MINUTES", 30, "minutes"),
        login_per_minute=_positive(env, "RAKUTEN_LOGIN_PER_MINUTE", 20, "attempts"),
        login_failures_per_minute=_positive(env, "RAKUTEN_LOGIN_FAILURES_PER_MINUTE", 5, "attempts"),
        registry_model=json.loads(env[RESOLVED_MODEL_ENV]) if env.get(RESOLVED_MODEL_ENV) else None,
        trusted_proxies=env.get(TRUSTED_PROXIES_ENV) or "127.0.0.1",
    )


def _positive(env: Mapping[str, str], name: str, default: int, unit: str) -> int:
    value = env.get(name, str(default))
    if not value.isdigit() or int(value) < 1:
        raise InputError(f"{name} = {value!r}, expected a whole number of {unit} >= 1")
    return int(value)
