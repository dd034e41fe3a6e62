"""The project's one lock: whoever changes data/raw or runs the pipeline (the server's /ingest and
/train, `rakuten ingest`, `rakuten batches approve`) holds it, so they never interleave."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Iterator

STATE_DIR_ENV = "RAKUTEN_STATE_DIR"


class Busy(Exception):
    """Another training or ingest holds the project."""


def state_dir(project: Path, env: Mapping[str, str] | None = None) -> Path:
    """Where the lock lives: RAKUTEN_STATE_DIR, else PROJECT/.dvc/tmp/serve (DVC's .gitignore ignores it)."""
    env = os.environ if env is None else env
    return Path(env.get(STATE_DIR_ENV) or Path(project) / ".dvc" / "tmp" / "serve")


@contextlib.contextmanager
def project_lock(state_dir: Path, wait: bool = False) -> Iterator[int]:
    """Hold the project for a change (training or ingest); Busy at once if someone else holds it.

    An flock on a file, so it also excludes the other uvicorn workers and is
    released by the kernel when the last holder dies. Yields the lock's file
    descriptor: a child process given it (``pass_fds``) holds the lock with us,
    and alone after we die, so a restarted server sees its run still going.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / "project.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy("a training run or an ingest is in progress; try again when it has finished") from None
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


def is_locked(state_dir: Path) -> bool:
    try:
        with project_lock(state_dir):
            return False
    except Busy:
        return True
