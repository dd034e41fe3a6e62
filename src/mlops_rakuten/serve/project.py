"""What the served project says about itself (DVC pointers, params, metrics, git); its one lock (ops).

Every reader here tolerates a file being absent or mid-rewrite: /info reports
what it can rather than failing while a training run rewrites dvc.lock.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.params import read_params
from mlops_rakuten.ops.commands import run
from mlops_rakuten.ops.dvcfiles import locked_md5, read_yaml
from mlops_rakuten.ops.ingest import data_version
from mlops_rakuten.ops.project_lock import Busy, is_locked, project_lock
from mlops_rakuten.serve.settings import DVC_LOCK, METRICS_PATH, MODEL_PATH, PIPELINE_FILE

__all__ = ["Busy", "data_version", "is_locked", "project_lock"]  # ops' own, under the names the routes use


def locked_model_md5(root: Path, out: str = MODEL_PATH) -> str | None:
    """The md5 dvc.lock records for the model; None before the first successful repro."""
    return locked_md5(read_yaml(root / DVC_LOCK), out)


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
