"""The CI and sweep workflows: valid for GitHub (actionlint) and doing what docs/team.md says.

tests/test_sharing.py runs the sweep workflow's own plan and run scripts on a local "runner".
"""

from __future__ import annotations


import pytest
import yaml

from conftest import ROOT, needs, run

WORKFLOWS = ROOT / ".github" / "workflows"


def load(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    workflow["on"] = workflow.pop(True)  # YAML 1.1 reads the key `on` as True
    return workflow


def step(job: dict, name: str) -> dict:
    return next(s for s in job["steps"] if s.get("name") == name)


@pytest.mark.parametrize("name", ["ci.yml", "sweep.yml"])
def test_workflow_passes_actionlint(name: str):
    binary = needs("actionlint")
    result = run([binary, "-no-color", str(WORKFLOWS / name)], ROOT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["ci.yml", "sweep.yml"])
def test_every_job_is_bounded(name: str):
    workflow = load(name)
    assert workflow["permissions"] and workflow["concurrency"]["group"]
    for job in workflow["jobs"].values():
        assert 0 < job["timeout-minutes"] <= 120


def test_ci_runs_the_suite_as_a_clean_clone_does_on_every_push_and_pull_request():
    workflow = load("ci.yml")
    assert set(workflow["on"]) == {"push", "pull_request"}
    assert workflow["concurrency"]["cancel-in-progress"] is True
    job = workflow["jobs"]["test"]
    assert job["runs-on"] == "ubuntu-latest" and job["container"]["image"].startswith("debian:")
    assert job["timeout-minutes"] <= 90
    scripts = [s.get("run", "") for s in job["steps"]]
    assert scripts[-1] == "bash .ci/run"  # which apt-installs tests/system_packages.txt, then make test
    cache = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"] == "${{ env.PIP_CACHE_DIR }}" and "requirements.lock" in cache["with"]["key"]


def test_sweep_fans_out_one_point_per_runner_and_reports_best_first():
    workflow = load("sweep.yml")
    assert "grid" in workflow["on"]["workflow_dispatch"]["inputs"]
    assert workflow["permissions"] == {"contents": "write"}  # experiment refs are git refs
    jobs = workflow["jobs"]
    assert "rakuten sweep-plan" in step(jobs["plan"], "Expand the grid")["run"]
    runner = jobs["run"]
    assert runner["strategy"]["matrix"]["point"] == "${{ fromJSON(needs.plan.outputs.points) }}"
    assert runner["strategy"]["fail-fast"] is False
    assert "secrets.DAGSHUB_TOKEN" in step(runner, "Get the data (DagsHub, or the demo set without the secret)")[
        "env"]["DAGSHUB_TOKEN"]
    assert "rakuten push-experiments" in step(runner, "Push it")["run"]
    report = step(jobs["report"], "Pull every point and summarise, best first")["run"]
    for command in ("dvc exp pull", "dvc exp show --md", "--sort-by f1_weighted --sort-order desc",
                    "GITHUB_STEP_SUMMARY"):
        assert command in report
