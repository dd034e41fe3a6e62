"""The CI and sweep workflows: valid for GitHub (actionlint) and doing what docs/team.md says.

tests/test_sharing.py runs the sweep workflow's own plan and run scripts on a local "runner".
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

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


ALL = ["ci.yml", "sweep.yml", "pr-report.yml"]


@pytest.mark.parametrize("name", ALL)
def test_workflow_passes_actionlint(name: str):
    binary = needs("actionlint")
    result = run([binary, "-no-color", str(WORKFLOWS / name)], ROOT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ALL)
def test_every_job_is_bounded(name: str):
    workflow = load(name)
    assert workflow["permissions"] and workflow["concurrency"]["group"]
    for job in workflow["jobs"].values():
        assert 0 < job["timeout-minutes"] <= 120


@pytest.mark.parametrize("name", ALL)
def test_only_jobs_that_push_or_comment_may_write(name: str):
    workflow = load(name)
    assert workflow["permissions"] == {"contents": "read"}  # the default for every job
    for job_name, job in workflow["jobs"].items():
        writes = {scope for scope, access in job.get("permissions", {}).items() if access == "write"}
        allowed = {("sweep.yml", "run"): {"contents"}, ("pr-report.yml", "comment"): {"pull-requests"}}
        assert writes == allowed.get((name, job_name), set()), (name, job_name)
        for checkout in (s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")):
            # No token in .git/config while the job installs packages and runs the project's code.
            pushes = (name, job_name) == ("sweep.yml", "run")  # authenticates in the remote URL instead
            assert checkout.get("with", {}).get("persist-credentials") is False or pushes, (name, job_name)
        if writes:
            assert pushes or not any(s.get("uses", "").startswith("actions/checkout@") for s in job["steps"])


def test_ci_runs_the_suite_as_a_clean_clone_does_on_every_push_and_pull_request():
    workflow = load("ci.yml")
    assert set(workflow["on"]) == {"push", "pull_request"}
    assert workflow["concurrency"]["cancel-in-progress"] is True
    # One run per branch: a same-repository pull request is already tested by its push.
    assert "github.head_ref || github.ref_name" in workflow["concurrency"]["group"]
    for job in workflow["jobs"].values():
        assert job["if"] == (
            "github.event_name == 'push' || github.event.pull_request.head.repo.full_name != github.repository"
        )
    job = workflow["jobs"]["test"]
    assert job["runs-on"] == "ubuntu-latest" and job["container"]["image"].startswith("debian:")
    assert job["timeout-minutes"] <= 90
    scripts = [s.get("run", "") for s in job["steps"]]
    assert scripts[-1] == "bash .ci/run"  # which apt-installs tests/system_packages.txt, then make test
    # ... and leaves the container stack to a job on the runner itself, where Docker runs it.
    assert job["env"]["RAKUTEN_CONTAINER_STACK_ELSEWHERE"] == "1"
    # What `unshare --mount` and `mount -t tmpfs` need under Docker (tests/test_prediction_log.py),
    # and no more: not --privileged, which podman-in-the-container would want.
    assert job["container"]["options"].split() == ["--cap-add", "SYS_ADMIN", "--security-opt", "apparmor=unconfined"]
    stack = workflow["jobs"]["containers"]
    assert "container" not in stack and stack["runs-on"] == "ubuntu-latest"
    assert stack["steps"][-1]["run"] == "make docker-test" and stack["steps"][-1]["env"]["NO_CACHE"] == "1"
    assert stack["env"]["COMPOSE"] == "docker compose"
    cache = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"] == "${{ env.PIP_CACHE_DIR }}" and "requirements.lock" in cache["with"]["key"]


def runs_on_push(push: dict | None, ref: str) -> bool:
    """Whether a push to ``ref`` starts the workflow, by GitHub's filter rules for the patterns used
    here ("**" only): a kind of ref (branch or tag) with no filter of its own runs only when neither
    kind has one."""
    push = push or {}  # a bare `push:`
    kind = "tags" if ref.startswith("refs/tags/") else "branches"
    filters = {key for key in push if key in ("branches", "branches-ignore", "tags", "tags-ignore")}
    assert all(push[key] == ["**"] for key in filters), "only '**' is modelled here"
    if kind in filters:
        return True
    if f"{kind}-ignore" in filters:
        return False
    return not filters


def test_ci_runs_on_branches_and_pull_requests_not_on_registry_tags():
    on = load("ci.yml")["on"]
    assert set(on) == {"push", "pull_request"}
    for branch in ("refs/heads/main", "refs/heads/feature/x", "refs/heads/dependabot/pip/dvc-3.60"):
        assert runs_on_push(on["push"], branch), branch
    # GTO's version and stage tags (make register, gto assign, rakuten retrain).
    for tag in ("refs/tags/rakuten-classifier@v1.1.0", "refs/tags/rakuten-classifier#prod#2", "refs/tags/v1"):
        assert not runs_on_push(on["push"], tag), tag
    assert not runs_on_push({"branches": ["**"]}, "refs/tags/v1") and runs_on_push(None, "refs/tags/v1")


def test_ci_reproduces_the_same_dvc_lock_on_every_supported_python():
    job = load("ci.yml")["jobs"]["reproduce"]
    # Every Python `make` accepts, no more, no fewer.
    supported = re.search(r"^SUPPORTED_PYTHONS := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert supported and job["strategy"]["matrix"]["python"] == supported[1].split() == ["3.11", "3.12", "3.13"]
    assert job["strategy"]["fail-fast"] is False and job["timeout-minutes"] <= 60
    setup = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python@"))
    assert setup["with"] == {
        "python-version": "${{ matrix.python }}",
        "cache": "pip",
        "cache-dependency-path": "requirements.lock",
    }
    assert step(job, "The pipeline on the demo data")["run"] == "make run PYTHON=python"
    check = step(job, "Same dvc.lock, nothing else changed")["run"]
    assert "git diff --exit-code dvc.lock" in check and "git status --porcelain" in check


def test_same_dvc_lock_check_fails_on_a_changed_lock_or_a_stray_file(tmp_path: Path):
    script = workflow_script("ci.yml", "reproduce", "Same dvc.lock, nothing else changed")
    run(["git", "init", "-q", str(tmp_path)], tmp_path)
    (tmp_path / "dvc.lock").write_text("md5: 1\n")
    run(["git", "add", "dvc.lock"], tmp_path)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "lock"], tmp_path)
    assert run_script(script, tmp_path).returncode == 0
    (tmp_path / "stray.csv").write_text("x\n")
    result = run_script(script, tmp_path)
    assert result.returncode == 1 and "stray.csv" in result.stdout
    (tmp_path / "stray.csv").unlink()
    (tmp_path / "dvc.lock").write_text("md5: 2\n")
    result = run_script(script, tmp_path)
    assert result.returncode == 1 and "+md5: 2" in result.stdout


USES = re.compile(r"^\s*(?:- )?uses: (?P<action>[\w.-]+/[\w./-]+)@(?P<ref>\S+)(?P<comment>.*)$")


@pytest.mark.parametrize("name", ALL)
def test_every_action_is_pinned_to_a_commit_with_its_version_beside_it(name: str):
    text = (WORKFLOWS / name).read_text()
    lines = [line for line in text.splitlines() if re.match(r"^\s*(?:- )?uses:", line)]
    used = [s["uses"] for job in load(name)["jobs"].values() for s in job["steps"] if "uses" in s]
    assert len(lines) == len(used) > 0  # every `uses:` is on a line of its own form
    for line in lines:
        match = USES.match(line)
        assert match, line
        # A tag can be moved to other code; a commit cannot. Dependabot updates both together.
        assert re.fullmatch(r"[0-9a-f]{40}", match["ref"]), line
        assert re.fullmatch(r" # v\d+(\.\d+){0,2}", match["comment"]), line


def test_dependabot_updates_the_actions_and_the_python_dependencies_weekly():
    config = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    assert config["version"] == 2
    updates = {u["package-ecosystem"]: u for u in config["updates"]}
    assert set(updates) == {"github-actions", "pip"}
    for update in updates.values():
        assert update["directory"] == "/" and update["schedule"]["interval"] == "weekly"
        assert update["cooldown"]["default-days"] >= 7  # a release a week old, not one out an hour ago


def test_the_dagshub_token_is_read_only_in_jobs_of_the_dagshub_environment():
    seen = []
    for name in ALL:
        for job_name, job in load(name)["jobs"].items():
            if "secrets." in yaml.safe_dump(job):
                # An environment secret: no other job, and no fork, is handed it.
                assert job.get("environment") == "dagshub", (name, job_name)
                seen.append((name, job_name))
    assert seen == [("sweep.yml", "run"), ("pr-report.yml", "report")]
    # The job that posts the comment, which can write to the pull request, gets no secret.
    assert "environment" not in load("pr-report.yml")["jobs"]["comment"]


def test_sweep_fans_out_one_point_per_runner_and_reports_best_first():
    workflow = load("sweep.yml")
    assert "grid" in workflow["on"]["workflow_dispatch"]["inputs"]
    jobs = workflow["jobs"]
    assert jobs["run"]["permissions"] == {"contents": "write"}  # experiment refs are git refs
    assert "rakuten sweep-plan" in step(jobs["plan"], "Expand the grid")["run"]
    runner = jobs["run"]
    assert runner["strategy"]["matrix"]["point"] == "${{ fromJSON(needs.plan.outputs.points) }}"
    assert runner["strategy"]["fail-fast"] is False
    assert (
        "secrets.DAGSHUB_TOKEN"
        in step(runner, "Get the data (DagsHub, or the demo set without the secret)")["env"]["DAGSHUB_TOKEN"]
    )
    assert "rakuten push-experiments" in step(runner, "Push it")["run"]
    report = step(jobs["report"], "Pull every point and summarise, best first")["run"]
    for command in (
        "dvc exp pull",
        "dvc exp show --md",
        "--sort-by f1_weighted --sort-order desc",
        "GITHUB_STEP_SUMMARY",
    ):
        assert command in report


def workflow_script(name: str, job: str, step_name: str) -> str:
    return step(load(name)["jobs"][job], step_name)["run"]


def run_script(script: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], **env},
    )


@pytest.mark.parametrize("value", ["0", "six", "6, 7", "${{ github.token }}", "1000", ""])
def test_sweep_refuses_a_max_parallel_that_is_not_a_small_whole_number(tmp_path: Path, value: str):
    output = tmp_path / "output"
    result = run_script(
        workflow_script("sweep.yml", "plan", "Expand the grid"),
        tmp_path,
        GRID="model.C=1",
        MAX_PARALLEL=value,
        GITHUB_RUN_NUMBER="3",
        GITHUB_OUTPUT=str(output),
    )
    assert result.returncode == 1
    assert f"max-parallel must be a whole number from 1 to 999, got '{value}'" in result.stdout
    assert not output.exists()
    runner = load("sweep.yml")["jobs"]["run"]
    assert runner["strategy"]["max-parallel"] == "${{ fromJSON(needs.plan.outputs.max-parallel) }}"


@pytest.mark.parametrize("attempt, name", [("1", "sweep-7-C-2"), ("2", "sweep-7-C-2-attempt2")])
def test_a_rerun_sweep_point_gets_a_name_of_its_own(tmp_path: Path, attempt: str, name: str):
    github_env = tmp_path / "env"
    result = run_script(
        workflow_script("sweep.yml", "run", "Name the point"),
        tmp_path,
        POINT="sweep-7-C-2",
        GITHUB_RUN_ATTEMPT=attempt,
        GITHUB_ENV=str(github_env),
    )
    assert result.returncode == 0, result.stderr
    assert github_env.read_text() == f"NAME={name}\n"


def test_pr_report_compares_with_the_merge_base_and_posts_from_a_job_without_the_code(tmp_path: Path):
    jobs = load("pr-report.yml")["jobs"]
    script = step(jobs["report"], "Write the report")["run"]
    assert 'base=$(git merge-base "origin/$BASE_REF" HEAD)' in script and '--base "$base"' in script
    # The merge base, not the base branch's tip: a commit landed on main after the branch is not the PR's.
    run(["git", "init", "-q", "-b", "main", str(tmp_path)], tmp_path)
    commit = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "--allow-empty", "-m"]
    run(commit + ["start"], tmp_path)
    fork_point = run(["git", "rev-parse", "HEAD"], tmp_path).stdout.strip()
    run(["git", "checkout", "-q", "-b", "feature"], tmp_path)
    run(commit + ["feature"], tmp_path)
    run(["git", "checkout", "-q", "main"], tmp_path)
    run(commit + ["main moves on"], tmp_path)
    run(["git", "update-ref", "refs/remotes/origin/main", "main"], tmp_path)
    run(["git", "checkout", "-q", "feature"], tmp_path)
    base = run(
        ["bash", "-c", script.splitlines()[0] + ' && echo "$base"'], tmp_path, env={"BASE_REF": "main"}
    ).stdout.strip()
    assert base == fork_point
    comment = jobs["comment"]
    assert comment["needs"] == "report" and comment["permissions"] == {"pull-requests": "write"}
