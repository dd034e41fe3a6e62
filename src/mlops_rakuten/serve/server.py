"""Starting the API for `rakuten serve` (its options: serve/cli.py): settings and model checked once, then uvicorn."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from mlops_rakuten.core.errors import InputError
from mlops_rakuten.serve import roles
from mlops_rakuten.serve.connections import DeadlineProtocol
from mlops_rakuten.serve.descriptors import raise_descriptor_limit
from mlops_rakuten.serve.follow import FOLLOW_SECONDS_ENV, follow_seconds, start_serving
from mlops_rakuten.serve.roles import ROLE_ENV, writes_project
from mlops_rakuten.serve.settings import (
    MODEL_REFERENCE_ENV,
    RESOLVED_MODEL_ENV,
    load_settings,
    users_file,
)
from mlops_rakuten.serve.users import list_users


def serve(
    host: str,
    port: int,
    workers: int = 1,
    access_log: bool = False,
    model: str | None = None,
    follow: float | None = None,
    role: str | None = None,
) -> None:
    """Run uvicorn; InputError (one line, exit 1) when the settings are missing or wrong.

    ``model`` (or $RAKUTEN_MODEL), a registry reference such as ``rakuten-classifier#prod``, is
    resolved and its bytes fetched and loaded once, here, before any worker starts: a bad
    reference or missing bytes stop the server before it listens. ``follow`` (seconds, or
    $RAKUTEN_FOLLOW_SECONDS) then checks the registry that often (serve/follow.py); ``role`` (or
    $RAKUTEN_ROLE): predict, writer or all (serve/roles.py).
    """
    from mlops_rakuten.serve import listen

    settings = load_settings()  # check here, once, rather than as a traceback in every worker
    raise_descriptor_limit()  # room for more connections, in this process and the workers it starts
    _warn_if_no_users()
    if role:
        os.environ[ROLE_ENV] = role
    if follow is not None:
        os.environ[FOLLOW_SECONDS_ENV] = str(follow)
    role, _ = roles.role(), follow_seconds()  # a bad value stops here, not in every worker
    reference = model or os.environ.get(MODEL_REFERENCE_ENV)
    if follow and not reference:
        raise InputError("--follow needs a registry stage to follow: --model NAME#STAGE (or RAKUTEN_MODEL)")
    if reference:
        from mlops_rakuten.core.predict import load_model
        from mlops_rakuten.ops.registry import fetch_model

        resolved = fetch_model(reference, settings.project_dir, settings.state_dir / "registry")
        load_model(Path(resolved.path))  # a file that is not a model fails here, not in the workers
        os.environ[RESOLVED_MODEL_ENV] = json.dumps(resolved.as_dict())
        start_serving(settings.state_dir, resolved.as_dict())
    elif writes_project(role):
        from mlops_rakuten.serve.restore import restore_model

        restore_model(settings.project_dir, settings.state_dir)  # a crashed `dvc repro` left none
    # Workers re-read the environment: pin the project so they agree whatever their cwd.
    os.environ["RAKUTEN_PROJECT_DIR"] = str(settings.project_dir)
    if workers > 1:
        # Shared metric files; emptied at start so counts of a previous run do not leak in.
        shared = settings.state_dir / "prometheus"
        shutil.rmtree(shared, ignore_errors=True)
        shared.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(shared)
    # DeadlineProtocol: a request's head and body must arrive in time, so slow clients cannot hold connections.
    listen.run(
        "mlops_rakuten.serve.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # Not uvicorn's: it believes the leftmost X-Forwarded-For entry when every peer is trusted. The app
        # takes the nearest entry no trusted proxy is (serve/forwarded.py, RAKUTEN_TRUSTED_PROXIES).
        proxy_headers=False,
        access_log=access_log,
        log_level="info",
        http=DeadlineProtocol,
        # Not uvicorn's "auto", which takes uvloop whenever it is installed: libuv meets a burst beyond the
        # file-descriptor limit by accepting and closing every pending connection, /health probes too, and
        # never tells the loop's exception handler (serve/connections.py's on_loop_error, which makes room).
        # Measured, uvloop did not lower the CPU of a request either (docs/serving.md).
        loop="asyncio",
    )


def _warn_if_no_users() -> None:
    try:
        users = list_users(users_file(dict(os.environ)))
    except InputError:
        return  # a broken users file is reported by the server itself, on every login
    if not users:
        logging.getLogger("serve").warning(
            "no users yet, so nobody can log in: add one with `rakuten user add NAME --role admin` (no restart needed)"
        )
