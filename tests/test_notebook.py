"""notebooks/01_exploration.ipynb: stored without outputs (make test runs it, see pyproject's testpaths),
and a run writes its figures to the git-ignored reports/figures/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "01_exploration.ipynb"


def test_notebook_is_stored_without_outputs():
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    assert code and all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)


def test_a_run_writes_its_figures_into_the_ignored_reports_folder(tmp_path):
    figures = ROOT / "reports" / "figures"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbmake", "-q", "-p", "no:cacheprovider", str(NOTEBOOK)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert {p.name for p in figures.iterdir()} >= {"class_distribution.png", "text_lengths.png"}
    ignored = subprocess.run(["git", "check-ignore", "-q", str(figures / "class_distribution.png")], cwd=ROOT)
    assert ignored.returncode == 0, "reports/figures/ must stay git-ignored"
