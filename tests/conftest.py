"""Shared fixtures: a throw-away git + DVC copy of this repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_rakuten.workspace import add_raw_data, copy_project, run  # noqa: F401  (run is re-exported)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small demo project, committed, pipeline not yet run."""
    dest = copy_project(ROOT, tmp_path / "project")
    add_raw_data(dest, rows=1500)
    return dest


def reproduced_project(dest: Path, rows: int = 1500) -> Path:
    """A demo project after `dvc repro`, its outputs committed."""
    copy_project(ROOT, dest)
    add_raw_data(dest, rows=rows)
    run(["dvc", "repro"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "pipeline outputs"], dest)
    return dest
