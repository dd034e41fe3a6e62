"""`rakuten ensure-raw-data` (make run's data step) without a remote: regenerate the tracked demo set."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import ROOT, run
from mlops_rakuten.workspace import copy_project


def project_with_committed_pointer(tmp_path: Path) -> Path:
    project = copy_project(ROOT, tmp_path / "project")
    (project / "data").mkdir(exist_ok=True)
    shutil.copy2(ROOT / "data/raw.dvc", project / "data/raw.dvc")
    return project


def test_regenerates_the_demo_set_the_committed_pointer_tracks(tmp_path: Path):
    project = project_with_committed_pointer(tmp_path)
    pointer = (project / "data/raw.dvc").read_text()
    result = run(["rakuten", "ensure-raw-data"], project)
    assert "matches data/raw.dvc" in result.stderr
    assert (project / "data/raw.dvc").read_text() == pointer
    assert "up to date" in run(["dvc", "status", "data/raw.dvc"], project).stdout
    # cached, so `dvc push` and queued experiments have it
    assert any((project / ".dvc/cache").rglob("*.dir"))
    # a second call leaves present data alone
    assert "nothing to fetch" in run(["rakuten", "ensure-raw-data"], project).stderr


def test_refuses_when_the_pointer_is_not_the_demo_set(tmp_path: Path):
    project = project_with_committed_pointer(tmp_path)
    dvc_file = project / "data/raw.dvc"
    other = dvc_file.read_text().replace("md5: ", "md5: 0", 1).replace(".dir", "", 1)[:-1] + "\n"
    dvc_file.write_text(other)
    result = run(["rakuten", "ensure-raw-data"], project, check=False)
    assert result.returncode == 1
    assert "data/raw.dvc tracks data other than the built-in demo set" in result.stderr
    assert "dvc pull" in result.stderr
    assert not (project / "data/raw").exists()
    assert dvc_file.read_text() == other
