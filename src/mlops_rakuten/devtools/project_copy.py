"""A throw-away copy of the project (code and DVC map, no data or outputs) for tests and benchmarks."""

from __future__ import annotations

import shutil
from pathlib import Path

from mlops_rakuten.core.paths import X_FILE, Y_FILE
from mlops_rakuten.ops.commands import run

# Outputs and the data pointer are left behind: the copy builds its own.
_SKIPPED = ("dvc.lock", "data/raw.dvc", "metrics/", "plots/")


def copy_project(root: Path, dest: Path) -> Path:
    """Copy the files git tracks or would track in ``root`` into ``dest`` and make it a git repo."""
    listed = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], root).stdout.splitlines()
    for name in listed:
        if name.startswith(_SKIPPED) or not (root / name).is_file():
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, dest / name)
    run(["git", "init", "-q", "-b", "main"], dest)
    run(["git", "config", "user.email", "pipeline@example.com"], dest)
    run(["git", "config", "user.name", "pipeline"], dest)
    return dest


def add_raw_data(dest: Path, rows: int | None = None, seed: int = 1, source: Path | None = None) -> None:
    """Put raw data in ``dest/data/raw`` (demo rows, or the CSVs of ``source``), track it, commit."""
    raw = dest / "data" / "raw"
    if source is not None:
        raw.mkdir(parents=True, exist_ok=True)
        for name in (X_FILE, Y_FILE):
            shutil.copy2(source / name, raw / name)
    else:
        run(["rakuten", "demo-data", "--rows", str(rows), "--seed", str(seed), "--out", str(raw)], dest)
    run(["dvc", "add", "-q", "data/raw"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "project with raw data"], dest)
