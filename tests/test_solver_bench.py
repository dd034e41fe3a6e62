"""make bench's solver table: every solver fitted on the same features, timed, and scored."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from mlops_rakuten.devtools import solver_bench

# The project's own tolerance, as params.yaml sets it.
TOL = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())["model"]["tol"]


def test_solver_bench_prints_one_timed_and_scored_row_per_solver(tmp_path: Path, capsys):
    solver_bench.main(["--sample", str(tmp_path / "no-sample"), "--rows", "1500"])
    out = capsys.readouterr().out
    assert out.startswith("demo data (1,500 rows; no real sample in ")
    rows = [line for line in out.splitlines() if line.startswith("| ") and "CPU s" not in line]
    assert [row.split(" | ")[0] for row in rows] == [
        f"| Newton per class from w = 0 (before the coarse start), `tol` {TOL}",
        f"| Newton per class, coarse start (this project), `tol` {TOL}",
        f"| Newton, all classes in one block (this project), `tol` {TOL}",
        f"| `LinearSVC(dual=False)`, `tol` {TOL}",
        "| `LinearSVC(dual=False)`, default `tol` (1e-4)",
        "| `LinearSVC(dual=True)`, default `tol` (1e-4)",
    ]
    scores = [float(row.rstrip(" |").rsplit("| ", 1)[1]) for row in rows]
    for what in ("coarse start against w = 0", "block against per class"):
        assert re.search(
            rf"\n{what}: CPU [0-9.]+ s against [0-9.]+ s \([0-9.]+ of the time, [0-9.]+× less\); the same prediction for ",
            out,
        )
    # The same objective and data: the solvers learn models of the same quality.
    assert max(scores) - min(scores) < 0.05 and min(scores) > 0.5


def test_newton_only_compares_the_two_starts(tmp_path: Path, capsys):
    solver_bench.main(["--sample", str(tmp_path / "no-sample"), "--rows", "1500", "--newton-only", "--repeat", "2"])
    out = capsys.readouterr().out
    assert "| Solver | CPU s (least of 2) |" in out
    assert len([line for line in out.splitlines() if line.startswith("| Newton per class")]) == 2
    assert "coarse start against w = 0: CPU" in out and "block" not in out and "LinearSVC" not in out
