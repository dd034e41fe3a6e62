"""The gated retrain for real: a project on a bare git remote and S3 (SeaweedFS), v1.0.0 registered and in
prod. New products like the old ones give a candidate that is registered as v1.1.0 (prod unchanged); a
mislabelled upload gives one that is refused, kept as a DVC experiment, with the report saying why."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import needs, run
from mlops_rakuten.demo_data import X_FILE, Y_FILE, generate
from mlops_rakuten.workspace import add_raw_data, copy_project
from conftest import ROOT
from team_remote import TeamRemote

NAME = "rakuten-classifier"
RAKUTEN = str(Path(sys.executable).parent / "rakuten")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    needs("weed")
    root = tmp_path_factory.mktemp("retrain")
    # 1,500 products: 150 frozen for the comparison (fewer, and one product moves F1 by a percent).
    project = copy_project(ROOT, root / "project")
    add_raw_data(project, rows=1_500)
    run(["dvc", "repro", "-q"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "pipeline reproduced"], project)
    remote = TeamRemote.create(project, root)
    try:
        run([RAKUTEN, "register", "v1.0.0"], project)
        run(["gto", "assign", NAME, "--version", "v1.0.0", "--stage", "prod", "--push"], project)
        yield project
    finally:
        remote.stop()


def append_raw(project: Path, rows: int, seed: int, shift_labels: bool = False) -> None:
    """Products appended to data/raw as /ingest would (new ids after the last), recorded and committed."""
    raw = project / "data" / "raw"
    with open(raw / Y_FILE, encoding="utf-8") as handle:
        start = sum(1 for _ in handle) - 1
    x_rows, y_rows = generate(rows, seed)
    if shift_labels:  # a broken export: every label one row off
        y_rows = [[y[0], previous[1]] for y, previous in zip(y_rows, y_rows[-1:] + y_rows[:-1])]
    with open(raw / X_FILE, "a", newline="", encoding="utf-8") as xs, open(raw / Y_FILE, "a", newline="") as ys:
        for x, y in zip(x_rows, y_rows):
            index = str(start + int(x[0]))
            csv.writer(xs, lineterminator="\n").writerow([index, *x[1:]])
            csv.writer(ys, lineterminator="\n").writerow([index, y[1]])
    run(["dvc", "add", "-q", "data/raw"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", f"{rows} more products"], project)


def retrain(project: Path) -> tuple[subprocess.CompletedProcess, str]:
    done = subprocess.run([RAKUTEN, "retrain"], cwd=project, capture_output=True, text=True)
    print(done.stdout, done.stderr[-3000:])
    report = Path(done.stdout.strip().splitlines()[-1].removeprefix("report: "))
    return done, (project / report).read_text(encoding="utf-8")


def versions(project: Path) -> dict[str, list[str]]:
    shown = json.loads(run(["gto", "show", NAME, "--json"], project).stdout)
    return {v["version"]: sorted(s["stage"] for s in v.get("stages") or []) for v in shown}


def test_a_candidate_as_good_as_production_is_registered_not_promoted(project):
    append_raw(project, 1_500, seed=11)
    head = run(["git", "rev-parse", "HEAD"], project).stdout.strip()
    done, report = retrain(project)
    assert done.returncode == 0, done.stderr
    assert "Candidate **accepted**: registered as rakuten-classifier v1.1.0" in report
    assert versions(project) == {"v1.0.0": ["prod"], "v1.1.0": []}  # never promoted by itself
    frozen = (project / "data/eval/frozen_test_ids.csv").read_text().split()
    assert frozen[0] == "id" and len(frozen) > 140  # production's test split, committed before the candidate ran
    log = run(["git", "log", "--format=%s", f"{head}..HEAD"], project).stdout
    assert "Freeze the evaluation set" in log and "Retrain retrain-" in log
    assert run(["git", "status", "--porcelain"], project).stdout == ""
    for section in ("### Metrics", "| f1_weighted |", "| 2583 Piscine", "production.png", "candidate.png"):
        assert section in report
    name = report.split("## Retrain report: ")[1].split()[0]
    assert (project / "reports" / f"{name}-candidate.png").stat().st_size > 10_000


def test_a_worse_candidate_is_refused_and_kept_as_an_experiment(project):
    # A mislabelled upload as large as the data so far: its labels are one row off.
    append_raw(project, 3_000, seed=12, shift_labels=True)
    head = run(["git", "rev-parse", "HEAD"], project).stdout.strip()
    tags = run(["git", "tag"], project).stdout
    done, report = retrain(project)
    assert done.returncode == 3, done.stderr
    assert "Candidate **refused**" in report and "Why it was refused:" in report
    assert "- weighted F1 fell from" in report
    assert "| 2583 Piscine et spa | 18 |" in report  # per class, with names
    name = report.split("## Retrain report: ")[1].split()[0]
    assert f"kept as DVC experiment {name}" in report
    assert name in run(["dvc", "exp", "list", "--name-only"], project).stdout
    assert run(["git", "rev-parse", "HEAD"], project).stdout.strip() == head  # nothing committed
    assert run(["git", "tag"], project).stdout == tags  # nothing registered
    assert run(["git", "status", "--porcelain"], project).stdout == ""
