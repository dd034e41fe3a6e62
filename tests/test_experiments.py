"""DVC experiments for real: `dvc exp run -S`, a queued sweep in temp copies, the learning curve."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mlops_rakuten.ops.experiments import learning_curve_points, parse_queue_status, stop_lingering_workers

from conftest import reproduced_project, run

pytestmark = pytest.mark.slow

STAGES = ["ingest", "preprocess", "split", "featurize", "train", "evaluate"]
VENV = Path(sys.executable).parent.parent


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A demo project whose pipeline ran and was committed: what experiments start from.

    Shared by the tests below (one full `dvc repro` is the slow part); each test
    leaves the workspace as it found it.
    """
    dest = reproduced_project(tmp_path_factory.mktemp("experiments") / "project")
    yield dest
    # Queue workers exit when idle; stop any left by a failed test before the folder goes.
    run(["dvc", "queue", "stop"], dest, check=False)


def make(target: str, project: Path, *variables: str):
    """`make TARGET` in a temp copy with the project's venv; -o keeps make from reinstalling into it."""
    # A hang (a queue worker holding the output pipe open) fails the test instead of stalling CI.
    return run(
        ["make", "--no-print-directory", "-o", f"{VENV}/.installed", target, f"VENV={VENV}", *variables],
        project,
        timeout=1200,
    )


def exp_show(project: Path) -> list[dict]:
    return json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)


def experiments(show: list[dict]) -> list[dict]:
    """The experiment revisions of the (one) baseline commit, straight from DVC's JSON."""
    commits = [entry for entry in show if entry["rev"] != "workspace"]
    assert len(commits) == 1
    return [rev for exp in commits[0]["experiments"] or [] for rev in exp["revs"]]


def params_of(rev: dict) -> dict:
    return rev["data"]["params"]["params.yaml"]["data"]


def metrics_of(rev: dict) -> dict:
    return rev["data"]["metrics"]["metrics/metrics.json"]["data"]


def workspace_state(project: Path) -> tuple:
    """What a person would notice changing: git's view, params, stashes, HEAD and the DVC-tracked model."""
    git = [
        run(["git", *args], project).stdout
        for args in (["status", "--porcelain"], ["stash", "list"], ["rev-parse", "HEAD"])
    ]
    files = [
        hashlib.sha256((project / name).read_bytes()).hexdigest()
        for name in ("params.yaml", "dvc.lock", "models/model.joblib", "metrics/metrics.json")
    ]
    return (*git, *files)


def test_exp_run_set_param_reruns_only_train_and_evaluate_and_is_listed(baseline: Path):
    try:
        out = run(["dvc", "exp", "run", "-n", "c-small", "-S", "model.C=0.125"], baseline).stdout
        # DVC's own account of the run: featurization came from the cache.
        assert [s for s in STAGES if f"Running stage '{s}'" in out] == ["train", "evaluate"]
        assert all(f"Stage '{s}' didn't change, skipping" in out for s in STAGES[:4])

        show = exp_show(baseline)
        (exp,) = [rev for rev in experiments(show) if rev["name"] == "c-small"]
        assert params_of(exp)["model"]["C"] == 0.125
        assert set(metrics_of(exp)) >= {"accuracy", "f1_weighted", "f1_macro", "n_train", "n_test"}
        # The run was applied to the workspace, so its metrics are the files on disk.
        assert metrics_of(exp) == json.loads((baseline / "metrics/metrics.json").read_text())
    finally:
        run(["git", "reset", "-q", "--hard"], baseline)
        run(["dvc", "checkout", "-q"], baseline)


def test_the_tours_temp_exp_run_leaves_the_workspace_and_git_status_as_they_were(baseline: Path):
    before = workspace_state(baseline)
    run(["dvc", "exp", "run", "--temp", "-n", "tour", "-S", "model.C=5"], baseline)
    assert workspace_state(baseline) == before
    assert run(["git", "status", "--porcelain", "--untracked-files=all"], baseline).stdout == ""
    (exp,) = [rev for rev in experiments(exp_show(baseline)) if rev["name"] == "tour"]
    assert params_of(exp)["model"]["C"] == 5
    assert metrics_of(exp) != json.loads((baseline / "metrics/metrics.json").read_text())


def own_values(params: Path) -> list[str]:
    """``-S section.key=value`` for every key of params.yaml, each with the value it already has."""

    def text(value) -> str:
        return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)

    document = yaml.safe_load(params.read_text())
    return [
        arg
        for section, keys in document.items()
        for key, value in keys.items()
        for arg in ("-S", f"{section}.{key}={text(value)}")
    ]


def committed(project: Path, name: str) -> bytes:
    return subprocess.run(["git", "show", f"HEAD:{name}"], cwd=project, capture_output=True, check=True).stdout


def reset(project: Path) -> None:
    """`git reset --hard`, but params.yaml from its bytes: git may take a same-size edit for unchanged."""
    (project / "params.yaml").write_bytes(committed(project, "params.yaml"))
    run(["git", "reset", "-q", "--hard"], project)


def test_exp_run_setting_every_key_to_its_own_value_leaves_params_yaml_byte_identical(baseline: Path):
    before = workspace_state(baseline)
    try:
        args = own_values(baseline / "params.yaml")
        assert len(args) == 2 * sum(len(keys) for keys in yaml.safe_load(committed(baseline, "params.yaml")).values())
        out = run(["dvc", "exp", "run", "-n", "own-values", *args], baseline).stdout
        assert "Running stage" not in out, out
        # Bytes, not only `git status`: git can trust a stale stat of a same-size edit (see check_params).
        assert (baseline / "params.yaml").read_bytes() == committed(baseline, "params.yaml")
        assert workspace_state(baseline) == before
    finally:
        run(["dvc", "exp", "remove", "own-values"], baseline, check=False)
        reset(baseline)


def model_files(project: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in (project / "models").iterdir()}


def test_a_failed_exp_run_keeps_the_models_and_prints_the_command_that_restores_params(baseline: Path):
    models, lock = model_files(baseline), (baseline / "dvc.lock").read_bytes()
    c = yaml.safe_load(committed(baseline, "params.yaml"))["model"]["C"]
    try:
        failed = run(["dvc", "exp", "run", "-S", "model.C=big"], baseline, check=False)
        assert failed.returncode != 0
        assert "Running stage 'train'" not in failed.stdout
        lines = failed.stderr.splitlines()
        assert lines[:4] == [
            "error: params.yaml: model.C = big, expected a number in (0, 1000000.0]",
            "No other stage ran and no output was removed.",
            f"params.yaml differs from the last commit (edited by hand or by `dvc exp run -S`): model.C {c} -> big.",
            "Fix the value and run again, or restore the committed file: git show HEAD:params.yaml > params.yaml",
        ]
        assert model_files(baseline) == models and (baseline / "dvc.lock").read_bytes() == lock
        # The printed command, as a person would paste it, puts the workspace back as it was.
        subprocess.run(lines[3].split(": ", 1)[1], shell=True, cwd=baseline, check=True)
        assert (baseline / "params.yaml").read_bytes() == committed(baseline, "params.yaml")
        assert "Data and pipelines are up to date." in run(["dvc", "status"], baseline).stdout
    finally:
        reset(baseline)


def test_a_failed_temp_exp_run_says_the_workspace_params_were_not_changed(baseline: Path):
    before, models = workspace_state(baseline), model_files(baseline)
    c = yaml.safe_load(committed(baseline, "params.yaml"))["model"]["C"]
    failed = run(["dvc", "exp", "run", "--temp", "-S", "model.C=big"], baseline, check=False)
    assert failed.returncode != 0 and "Running stage 'train'" not in failed.stdout
    assert failed.stderr.splitlines()[:4] == [
        "error: params.yaml: model.C = big, expected a number in (0, 1000000.0]",
        "No other stage ran and no output was removed.",
        "This run was in a temporary copy of the workspace (`dvc exp run --temp` or the queue), "
        f"where params.yaml differs from the last commit: model.C {c} -> big.",
        "The workspace's params.yaml was not changed: fix the value and run again.",
    ]
    assert "git show" not in failed.stderr  # nothing to restore
    assert workspace_state(baseline) == before and model_files(baseline) == models
    assert (baseline / "params.yaml").read_bytes() == committed(baseline, "params.yaml")


def test_a_misspelt_key_changes_nothing_and_its_added_form_lists_the_keys(baseline: Path):
    before, models = workspace_state(baseline), model_files(baseline)
    try:
        # DVC itself refuses a key params.yaml does not have, before writing anything.
        refused = run(["dvc", "exp", "run", "-S", "model.Cx=1"], baseline, check=False)
        assert refused.returncode != 0 and "Could not override 'model.Cx'" in refused.stderr
        assert workspace_state(baseline) == before and model_files(baseline) == models
        # With the `+` DVC suggests, the key is written, and check_params names the keys that exist.
        added = run(["dvc", "exp", "run", "-S", "+model.Cx=1"], baseline, check=False)
        assert added.returncode != 0 and "Running stage 'train'" not in added.stdout
        assert (
            "error: params.yaml: unknown key model.Cx (did you mean model.C? expected one of C, class_weight, "
            in added.stderr
        )
        assert model_files(baseline) == models
    finally:
        reset(baseline)


def test_documented_commands_leave_git_status_empty(baseline: Path):
    """What a newcomer runs besides the pipeline writes only git-ignored files."""
    before = workspace_state(baseline)
    written = ["dvc_plots", "new_products.csv", "products.csv", "predictions.csv"]
    try:
        run(["dvc", "plots", "show"], baseline)
        run(["dvc", "plots", "diff", "HEAD"], baseline)
        assert (baseline / "dvc_plots/index.html").is_file()
        # The serving and prediction examples, run in the project folder.
        (baseline / "new_products.csv").write_text("designation,description,prdtypecode\nRobot piscine,,2583\n")
        (baseline / "products.csv").write_text("designation,description\nPiscine hors sol,\nRoman policier,\n")
        run(["rakuten", "predict", "--input", "products.csv", "--output", "predictions.csv"], baseline)
        assert (baseline / "predictions.csv").is_file()
        assert run(["git", "status", "--porcelain", "--untracked-files=all"], baseline).stdout == ""
        assert workspace_state(baseline) == before
    finally:
        for name in written:
            path = baseline / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def test_queued_sweep_runs_in_temp_copies_leaves_the_workspace_and_draws_the_learning_curve(baseline: Path):
    before = workspace_state(baseline)
    # make learning-curve: queue, `dvc queue start --jobs 2`, wait, plot. Every stage of the
    # 0.5 run executes in a temp copy, so data/raw must come from the DVC cache there.
    out = make("learning-curve", baseline, "FRACTIONS=0.5,1.0").stdout
    assert "dvc queue start --jobs 2" in out and "experiment queue done" in out
    png = (baseline / "plots/learning_curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert workspace_state(baseline) == before  # the curve it adds is git-ignored

    swept = {
        params_of(rev)["ingest"]["fraction"]: rev for rev in experiments(exp_show(baseline)) if rev["name"] != "c-small"
    }
    assert set(swept) == {0.5, 1.0}
    for rev in swept.values():
        assert rev["error"] is None and metrics_of(rev)["f1_weighted"] > 0
    assert metrics_of(swept[0.5]) != metrics_of(swept[1.0])
    assert metrics_of(swept[0.5])["n_train"] < metrics_of(swept[1.0])["n_train"]
    # The curve's points are those two runs, fewest training rows first.
    points = [line for line in out.splitlines() if " n_train=" in line]
    assert len(points) == 2
    for fraction, line in zip((0.5, 1.0), points, strict=True):
        assert f"ingest.fraction={fraction} n_train={metrics_of(swept[fraction])['n_train']} " in line


# As DVC pads it: an unnamed task, and a task from another day (a date with spaces).
QUEUE_STATUS = """\
Task     Name        Created       Status
c6d435c  runty-curb  07:21 AM      Running
4b8560f              07:21 AM      Queued
9fc6315  leafy-rain  Nov 25, 2026  Failed

Worker status: 1 active, 1 idle
"""


def test_a_queue_worker_left_idle_in_this_repo_is_stopped_and_others_are_not(tmp_path: Path):
    here, elsewhere = tmp_path / "repo", tmp_path / "other"
    here.mkdir()
    elsewhere.mkdir()
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)", "exp", "queue-worker"]
    stray = subprocess.Popen(sleeper, cwd=here)
    other = subprocess.Popen(sleeper, cwd=elsewhere)
    try:
        assert stop_lingering_workers(here, grace=0.5) == 1
        stray.wait(timeout=10)  # raises if it is still running (psutil reaped it: no exit code to check)
        assert other.poll() is None
        assert stop_lingering_workers(here, grace=0.5) == 0
    finally:
        for proc in (stray, other):
            proc.kill()
            proc.wait()


def test_queue_status_is_read_per_task_even_without_a_name():
    tasks, active = parse_queue_status(QUEUE_STATUS)
    assert tasks == {
        "c6d435c": ("runty-curb", "Running"),
        "4b8560f": ("", "Queued"),
        "9fc6315": ("leafy-rain", "Failed"),
    }
    assert active == 1
    assert parse_queue_status("No experiment tasks in the queue.\n\nWorker status: 0 active, 0 idle\n") == ({}, 0)


def _rev(name: str, timestamp: str, fraction: float, C: float, n_train: int | None) -> dict:
    metrics = {"metrics/metrics.json": {"data": {"n_train": n_train, "f1_weighted": 0.5}}} if n_train else {}
    params = {"params.yaml": {"data": {"ingest": {"fraction": fraction}, "model": {"C": C}}}}
    return {
        "rev": name * 5,
        "name": name,
        "error": None,
        "data": {"timestamp": timestamp, "params": params, "metrics": metrics},
    }


def test_learning_curve_keeps_only_runs_that_differ_from_head_in_the_fraction():
    head = _rev("main", "2026-01-01T00:00:00", 1.0, 1.0, 800)
    head["experiments"] = [
        {"revs": [rev]}
        for rev in (
            _rev("quarter", "2026-01-02T00:00:00", 0.25, 1.0, 200),
            _rev("other-c", "2026-01-02T00:00:01", 0.5, 0.3, 400),  # another C: not on this curve
            _rev("queued", "2026-01-02T00:00:02", 0.1, 1.0, None),  # no metrics yet
            _rev("full-again", "2026-01-03T00:00:00", 1.0, 1.0, 800),  # same fraction as HEAD: newest wins
        )
    ]
    show = [{"rev": "workspace", "name": None, "data": {}, "error": None, "experiments": None}, head]
    assert [run.name for run in learning_curve_points(show)] == ["quarter", "full-again"]
