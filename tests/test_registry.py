"""The model registry for real: GTO tags on a bare git remote, model bytes on SeaweedFS.

A maintainer registers v1.0.0 and promotes it to prod, retrains with another C, is refused
registration until the change is committed, matches dvc.lock and is pushed, then registers and
promotes v1.1.0. A second clone that never ran the pipeline serves and predicts with
``rakuten-classifier#prod``, ``@v1.0.0`` and ``@latest`` and gets each version's exact bytes.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from mlops_rakuten.ops.remote import configure_remote

from conftest import run
from serve_support import auth, free_port, make_settings, server_env, stop, wait_until
from team_remote import TeamRemote

pytestmark = pytest.mark.server

NAME = "rakuten-classifier"
RAKUTEN = str(Path(sys.executable).parent / "rakuten")
VENV = Path(sys.executable).parent.parent


def make(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(
        ["make", "--no-print-directory", "-o", f"{VENV}/.installed", f"VENV={VENV}", *args], project, check=check
    )


def model_md5(project: Path) -> str:
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    return next(o["md5"] for o in lock["stages"]["train"]["outs"] if o["path"] == "models/model.joblib")


def refused(project: Path, version: str) -> str:
    result = make(project, "register", f"VERSION={version}", check=False)
    assert result.returncode != 0, result.stdout
    error = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1, result.stderr
    return error[0]


@pytest.fixture(scope="module")
def registry(team_remote: TeamRemote, tmp_path_factory) -> dict:
    """v1.0.0 (the baseline) and v1.1.0 (C=0.25) registered; prod moved from the first to the second."""
    root = tmp_path_factory.mktemp("registry")
    # Its own copy of the git remote: tags and commits here do not reach other modules' clones.
    git_url = root / "registry.git"
    run(["git", "clone", "-q", "--bare", str(team_remote.git_url), str(git_url)], root)
    remote = dataclasses.replace(team_remote, git_url=git_url)
    maintainer = remote.clone(root / "maintainer")
    run(["dvc", "pull", "-q"], maintainer)
    run(["dvc", "repro", "-q"], maintainer)  # check_params' marker is not cached: rewritten, nothing else runs
    versions = {"v1.0.0": model_md5(maintainer)}
    out = make(maintainer, "register", "VERSION=v1.0.0").stdout
    assert f"Created git tag '{NAME}@v1.0.0'" in out
    make(maintainer, "promote", "VERSION=v1.0.0", "STAGE=prod")

    params = maintainer / "params.yaml"
    params.write_text(params.read_text().replace("  C: ", "  C: 0.25  # was ", 1))
    run(["dvc", "repro"], maintainer)
    reasons = [refused(maintainer, "v1.1.0")]
    run(["git", "commit", "-q", "-am", "C=0.25"], maintainer)
    model = maintainer / "models/model.joblib"
    good = model.read_bytes()
    model.write_bytes(b"edited by hand")
    reasons.append(refused(maintainer, "v1.1.0"))
    model.write_bytes(good)
    reasons.append(refused(maintainer, "v1.1.0"))
    run(["dvc", "push", "-q"], maintainer)
    reasons.append(refused(maintainer, "v1.1.0"))
    run(["git", "push", "-q", "origin", "main"], maintainer)
    make(maintainer, "register", "VERSION=v1.1.0")
    make(maintainer, "promote", "VERSION=v1.1.0", "STAGE=prod")
    versions["v1.1.0"] = model_md5(maintainer)
    print("register refusals:", *reasons, sep="\n  ")
    assert versions["v1.0.0"] != versions["v1.1.0"]
    return {"remote": remote, "versions": versions, "reasons": reasons, "root": root}


def test_register_refuses_a_model_others_could_not_fetch(registry):
    dirty, not_locked, not_on_dvc_remote, not_on_git_remote = registry["reasons"]
    assert dirty.startswith("error: uncommitted changes (M dvc.lock") and "commit them" in dirty
    assert "the workspace does not match dvc.lock (stages: train)" in not_locked and "dvc repro" in not_locked
    assert "models/model.joblib is not on the DVC remote" in not_on_dvc_remote and "`dvc push`" in not_on_dvc_remote
    assert "is on no branch of a git remote: run `git push origin HEAD`" in not_on_git_remote
    tags = run(["git", "tag"], registry["remote"].git_url).stdout.split()
    assert sorted(tags) == [f"{NAME}#prod#1", f"{NAME}#prod#2", f"{NAME}@v1.0.0", f"{NAME}@v1.1.0"]


@pytest.fixture(scope="module")
def newcomer(registry) -> Path:
    """A clone that never ran the pipeline and pulled nothing: no model, no DVC cache."""
    clone = registry["remote"].clone(registry["root"] / "newcomer")
    assert not (clone / "models/model.joblib").exists() and not (clone / ".dvc/cache").exists()
    return clone


def test_each_reference_predicts_with_its_versions_bytes(registry, newcomer):
    versions = registry["versions"]
    for reference, version in ((f"{NAME}#prod", "v1.1.0"), (f"{NAME}@v1.0.0", "v1.0.0"), (f"{NAME}@latest", "v1.1.0")):
        result = run([RAKUTEN, "predict", "--model", reference, "--text", "Piscine gonflable"], newcomer)
        assert json.loads(result.stdout)[0]["prdtypecode"]
        fetched = newcomer / ".dvc/tmp/registry" / f"{NAME}@{version}.joblib"
        assert run(["md5sum", str(fetched)], newcomer).stdout.split()[0] == versions[version], reference
        assert f"{reference} is {NAME} {version}" in result.stderr
    assert run(["git", "status", "--porcelain"], newcomer).stdout == ""


def test_serve_loads_the_prod_version_and_info_names_it(registry, newcomer, tmp_path):
    settings = make_settings(newcomer, tmp_path / "secrets")
    port, log = free_port(), tmp_path / "serve.log"
    env = {**server_env(settings), "RAKUTEN_MODEL": f"{NAME}#prod"}  # as a container passes it
    with open(log, "w") as output:
        server = subprocess.Popen(
            [RAKUTEN, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200,
            "rakuten serve --model to answer /health",
            process=server,
            log=log,
        )
        info = httpx.get(f"http://127.0.0.1:{port}/info", headers=auth(settings, "alice", "admin"), timeout=10).json()
    finally:
        stop(server)
    model = info["model"]
    commit = run(["git", "rev-parse", f"{NAME}@v1.1.0^{{commit}}"], newcomer).stdout.strip()
    assert model["registry"] == {
        "reference": f"{NAME}#prod",
        "name": NAME,
        "version": "v1.1.0",
        "stages": ["prod"],
        "commit": commit,
        "since": model["registry"]["since"],
        "follow_seconds": 0,
        "checked_at": None,
        "error": None,
    }
    assert model["registry"]["since"] <= model["loaded_at"]  # the server's start, before each worker's load
    assert model["md5"] == model["loaded_md5"] == registry["versions"]["v1.1.0"] and model["matches_dvc_lock"]
    assert info["params"]["C"] == 0.25 and info["metrics"]["f1_weighted"] > 0  # v1.1.0's, not the workspace's


@pytest.mark.parametrize(
    "reference, says",
    [
        (f"{NAME}@v9.9.9", f"{NAME}@v9.9.9: {NAME} has no version v9.9.9"),
        (f"{NAME}#staging", f"{NAME}#staging: no version of {NAME} is in stage 'staging'"),
        ("other-model#prod", f"other-model#prod: no artifact 'other-model' in the registry (registered: {NAME})"),
        (f"{NAME}:prod", f"model reference '{NAME}:prod': expected NAME#STAGE, NAME@vX.Y.Z or NAME@latest"),
        (f"{NAME}@v1.0.0 empty-bucket", "model bytes not fetched from the DVC remote"),
    ],
)
def test_a_bad_reference_is_one_line_and_no_server(registry, newcomer, tmp_path, reference, says):
    project = newcomer
    if reference.endswith(" empty-bucket"):  # the version exists, its bytes are not where the remote points
        reference = reference.split()[0]
        project = registry["remote"].clone(tmp_path / "elsewhere")
        registry["remote"].s3.client().create_bucket(Bucket="empty")
        configure_remote(project, registry["remote"].s3.endpoint, registry["remote"].token)
        local = project / ".dvc/config.local"
        local.write_text(local.read_text().replace("s3://dvc", "s3://empty"))
    settings = make_settings(project, tmp_path / "secrets")
    port = free_port()
    result = subprocess.run(
        [RAKUTEN, "serve", "--port", str(port), "--model", reference],
        env=server_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and says in lines[-1], result.stderr
    assert not any(line.startswith("error: ") for line in lines[:-1])
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    fetched = settings.state_dir / "registry"
    assert not list(fetched.glob(".*.tmp"))  # no half-fetched model left behind
    if project != newcomer:
        assert not list(fetched.glob("*.joblib"))
