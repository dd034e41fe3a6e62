"""What the served project says about itself (DVC pointers, params, metrics, git) and its one lock.

Every reader here tolerates a file being absent or mid-rewrite: /info reports
what it can rather than failing while a training run rewrites dvc.lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.params import read_params
from mlops_rakuten.ops.commands import run
from mlops_rakuten.ops.dvcfiles import locked_md5, pointer_out, read_yaml
from mlops_rakuten.serve.settings import DVC_LOCK, METRICS_PATH, MODEL_PATH, PIPELINE_FILE, RAW_POINTER


class Busy(Exception):
    """Another training or ingest holds the project."""


def locked_model_md5(root: Path, out: str = MODEL_PATH) -> str | None:
    """The md5 dvc.lock records for the model; None before the first successful repro."""
    return locked_md5(read_yaml(root / DVC_LOCK), out)


def data_version(root: Path) -> dict[str, Any] | None:
    """md5, size and file count of the raw data as ``data/raw.dvc`` records them."""
    out = pointer_out(read_yaml(root / RAW_POINTER))
    if not out.get("md5"):
        return None
    return {"path": RAW_POINTER, **{key: out.get(key) for key in ("md5", "size", "nfiles")}}


def model_params(root: Path) -> dict[str, Any]:
    """params.yaml's model section, or the reason it cannot be read."""
    try:
        return read_params(root / "params.yaml", "model")
    except InputError as exc:
        return {"error": str(exc)}


def read_metrics(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / METRICS_PATH).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def git_commit(root: Path) -> str | None:
    try:
        result = run(["git", "rev-parse", "HEAD"], root, check=False, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


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


def uncached_outputs(root: Path) -> list[str]:
    """The outputs dvc.yaml declares with ``cache: false`` (metrics, plots): `dvc checkout` cannot restore them."""
    pipeline = read_yaml(root / PIPELINE_FILE)
    stages = (pipeline.get("stages") if isinstance(pipeline, dict) else None) or {}
    paths = []
    for stage in stages.values():
        for key in ("outs", "metrics", "plots"):
            for out in stage.get(key) or []:
                if isinstance(out, dict):
                    paths += [path for path, options in out.items() if (options or {}).get("cache") is False]
    return paths
