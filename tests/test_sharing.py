"""Experiments that leave the machine: two CI "runners" each run one sweep point and `dvc exp push` it; a
teammate's clone `dvc exp pull`s both, sees them in `dvc exp show`, applies one and gets the runner's bytes.

Runners and teammate are separate clones of one bare git remote, sharing one S3 remote (SeaweedFS on
loopback), as GitHub + DagsHub would be. The points come from the sweep workflow's plan script; runner 1
runs its point with `make sweep PUSH=1` (queue, wait, push), runner 2 with the workflow's run script
(`dvc exp run -n NAME -S ...`) and `rakuten push-experiments`, as the workflow's push step does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mlops_rakuten.ops.remote import configure_remote

from conftest import run
from team_remote import TeamRemote, cache_file, git_objects, sha256

pytestmark = pytest.mark.server

VENV = Path(sys.executable).parent.parent
MODELS = ["models/model.joblib", "models/holdout_model.joblib"]
GRID = "model.C=0.125,2"
SWEEP_WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "sweep.yml"


def workflow_script(job: str, step: str) -> str:
    """The shell script of one step of the sweep workflow, to run it here as a runner would."""
    steps = yaml.safe_load(SWEEP_WORKFLOW.read_text())["jobs"][job]["steps"]
    return next(s["run"] for s in steps if s.get("name") == step)


def run_script(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return run(["bash", "-euo", "pipefail", "-c", script], cwd, env=env)


def exp_ref(project: Path, name: str) -> str:
    """The git ref DVC keeps experiment ``name`` under (refs/exps/<baseline>/<name>)."""
    ref = run(["git", "for-each-ref", "--format=%(refname)", f"refs/exps/*/*/{name}"], project).stdout.strip()
    assert ref, f"no experiment {name} in {project}"
    return ref


def locked_md5s(project: Path, rev: str) -> dict[str, str]:
    """path -> md5 of the model files as dvc.lock records them at ``rev``."""
    lock = yaml.safe_load(run(["git", "show", f"{rev}:dvc.lock"], project).stdout)
    return {out["path"]: out["md5"] for out in lock["stages"]["train"]["outs"]}


def exp_revs(project: Path) -> dict[str, dict]:
    """name -> revision entry of `dvc exp show --json` for the experiments of HEAD."""
    show = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    head = next(entry for entry in show if entry["rev"] != "workspace")
    return {rev["name"]: rev for exp in head["experiments"] or [] for rev in exp["revs"]}


def metrics_of(rev: dict) -> dict:
    return rev["data"]["metrics"]["metrics/metrics.json"]["data"]


@pytest.fixture(scope="module")
def sweep(team_remote: TeamRemote, tmp_path_factory) -> dict:
    """Plan two points, run one on each runner (side by side), push; return what each runner built."""
    root = tmp_path_factory.mktemp("sweep")
    start = time.monotonic()
    runners = [team_remote.clone(root / f"runner{i}") for i in (1, 2)]
    # The workflow's plan job, as GitHub runs it (run number 7).
    outputs = root / "github_output"
    run_script(
        workflow_script("plan", "Expand the grid"),
        runners[0],
        GRID=GRID,
        MAX_PARALLEL="2",
        GITHUB_RUN_NUMBER="7",
        GITHUB_OUTPUT=str(outputs),
    )
    written = dict(line.partition("=")[::2] for line in outputs.read_text().splitlines())
    plan = json.loads(written["points"])
    assert written["max-parallel"] == "2" and plan == [
        {"name": "sweep-7-C-0.125", "params": "model.C=0.125"},
        {"name": "sweep-7-C-2", "params": "model.C=2"},
    ]
    for runner in runners:
        run(["dvc", "pull", "-q"], runner)  # data and the baseline's outputs: only train + evaluate rerun

    first, second = plan
    sweep_cmd = [
        "make",
        "--no-print-directory",
        "-o",
        f"{VENV}/.installed",
        "sweep",
        f"VENV={VENV}",
        "PUSH=1",
        "JOBS=1",
        f"SWEEP=-n {first['name']} -S {first['params']}",
    ]
    env = {**os.environ, "PATH": f"{VENV}/bin{os.pathsep}{os.environ['PATH']}"}
    queued = subprocess.Popen(
        sweep_cmd, cwd=runners[0], env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        # Runner 2: the workflow's matrix job step that runs one point.
        run_script(workflow_script("run", "Run the point"), runners[1], NAME=second["name"], PARAMS=second["params"])
        out, err = queued.communicate(timeout=1200)
    finally:
        if queued.poll() is None:
            queued.kill()
    assert queued.returncode == 0, out + err
    assert f"pushed 1 experiment(s) to origin: {first['name']}" in out

    # What one push uploads: refs and git objects to the git remote, outputs to the DVC remote.
    ref = exp_ref(runners[1], second["name"])
    objects = git_objects(runners[1], ref, "origin/main")
    refs_before, keys_before = team_remote.refs(), team_remote.object_sizes()
    pushed = run(["rakuten", "push-experiments", second["name"]], runners[1])
    new_refs = set(team_remote.refs()) - set(refs_before)
    uploaded = {k: v for k, v in team_remote.object_sizes().items() if k not in keys_before}
    print(
        f"exp push of {second['name']}: {len(new_refs)} ref ({sorted(new_refs)}), {objects[0]} git objects "
        f"({objects[1]} bytes uncompressed); {len(uploaded)} DVC objects ({sum(uploaded.values())} bytes): "
        f"{sorted(uploaded)}; log: {pushed.stderr.strip()}"
    )
    built = {
        p["name"]: (runner, locked_md5s(runner, exp_ref(runner, p["name"])))
        for runner, p in zip(runners, plan, strict=True)
    }
    assert new_refs == {ref}
    # Only what the new C changed, and no run-cache (runs/...): the baseline's objects were already there.
    assert set(uploaded) == {f"files/md5/{md5[:2]}/{md5[2:]}" for md5 in built[second["name"]][1].values()}
    print(f"two runners, plan to both pushed: {time.monotonic() - start:.1f}s wall")
    return {"plan": plan, "built": built, "runners": runners}


def test_a_teammate_pulls_both_runs_and_applies_one_with_the_runners_exact_bytes(team_remote, sweep, tmp_path):
    start = time.monotonic()
    teammate = team_remote.clone(tmp_path / "teammate")
    names = [p["name"] for p in sweep["plan"]]
    listed = run(["dvc", "exp", "list", "--name-only", "origin"], teammate).stdout.split()
    assert set(names) <= set(listed)
    run(["dvc", "exp", "pull", "origin", *names], teammate)

    revs = exp_revs(teammate)
    for name, C in zip(names, (0.125, 2), strict=True):
        assert revs[name]["data"]["params"]["params.yaml"]["data"]["model"]["C"] == C
        runner, _ = sweep["built"][name]
        assert metrics_of(revs[name]) == json.loads(
            run(["git", "show", f"{exp_ref(runner, name)}:metrics/metrics.json"], runner).stdout
        )
    assert metrics_of(revs[names[0]]) != metrics_of(revs[names[1]])

    for name in names:  # the queued run (built in a temp copy) and the workspace run
        runner, md5s = sweep["built"][name]
        run(["dvc", "exp", "apply", name], teammate)
        pulled = run(["dvc", "pull"], teammate)
        for path in MODELS:
            assert sha256(teammate / path) == sha256(cache_file(runner, md5s[path])), (name, path)
        # Nothing is recomputed: at most check_params reruns (its output is a fixed text); every stage
        # after it finds its inputs and outputs unchanged.
        repro = run(["dvc", "repro"], teammate).stdout
        assert [line for line in repro.splitlines() if line.startswith("Running stage")] in (
            [],
            ["Running stage 'check_params':"],
        ), repro + pulled.stdout
        assert "Data and pipelines are up to date." in run(["dvc", "status"], teammate).stdout
        for path in MODELS:
            assert sha256(teammate / path) == sha256(cache_file(runner, md5s[path])), (name, path)
    print(f"teammate: clone, exp pull 2, apply + pull + repro each: {time.monotonic() - start:.1f}s wall")


def test_a_push_that_fails_keeps_the_run_and_says_what_to_run(team_remote, sweep):
    runner = sweep["runners"][1]
    name = sweep["plan"][1]["name"]
    configure_remote(runner, team_remote.s3.endpoint, "revoked-token")
    failed = run(["rakuten", "push-experiments", name], runner, check=False)
    print("push with a revoked token:", failed.stderr.strip())
    assert failed.returncode == 1
    assert f"{name}: not pushed (failed to push cache: Forbidden" in failed.stderr
    assert failed.stderr.strip().splitlines()[-1] == (
        f"error: not pushed, kept locally: {name}; run: dvc exp push origin {name}"
    )
    assert name in exp_revs(runner)

    run(["git", "remote", "set-url", "origin", str(team_remote.git_url) + ".moved"], runner)
    configure_remote(runner, team_remote.s3.endpoint, team_remote.token)
    moved = run(["rakuten", "push-experiments", name], runner, check=False)
    assert moved.returncode == 1 and "No git repository was found" in moved.stderr
    run(["git", "remote", "set-url", "origin", str(team_remote.git_url)], runner)
    assert run(["rakuten", "push-experiments", name], runner).returncode == 0


def test_sweep_plan_is_every_combination_with_git_safe_names(tmp_path):
    from mlops_rakuten.core.errors import InputError
    from mlops_rakuten.ops.sweep import sweep_plan

    params = tmp_path / "params.yaml"
    params.write_text("model:\n  C: 1\n  class_weight: null\nsplit:\n  seed: 1\n")
    points = sweep_plan(["model.C=0.1,1", "model.class_weight=null,balanced"], params, prefix="s-3-")
    assert [p.as_matrix_entry() for p in points] == [
        {"name": "s-3-C-0.1-class_weight-null", "params": "model.C=0.1 model.class_weight=null"},
        {"name": "s-3-C-0.1-class_weight-balanced", "params": "model.C=0.1 model.class_weight=balanced"},
        {"name": "s-3-C-1-class_weight-null", "params": "model.C=1 model.class_weight=null"},
        {"name": "s-3-C-1-class_weight-balanced", "params": "model.C=1 model.class_weight=balanced"},
    ]
    for bad, says in (
        ["model.c=1", "no key 'model.c' (known: model.C, model.class_weight)"],
        ["model.C=0.1 0.3", "expected section.key=value"],
        ["model.C=1,1", "distinct, non-empty values"],
        ["model.C=1,", "distinct, non-empty values"],
    ):
        with pytest.raises(InputError, match=None) as caught:
            sweep_plan([bad], params)
        assert says in str(caught.value)
    with pytest.raises(InputError, match="more than the 256 jobs"):
        sweep_plan(["model.C=" + ",".join(str(i) for i in range(300))], params)
    cli = run(["rakuten", "sweep-plan", "model.C=2", "--params", str(params)], tmp_path)
    assert json.loads(cli.stdout) == [{"name": "C-2", "params": "model.C=2"}]
