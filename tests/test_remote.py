"""Data and models on an S3 remote, for real: DVC pushes to and pulls from SeaweedFS on loopback.

The remote is configured exactly as for DagsHub (``s3://dvc``, ``endpointurl``, the token as both keys in
``.dvc/config.local``); only the endpoint is the local server. One server and one built project (a 1500-row
demo set after ``dvc repro``) serve the whole module; each test works on its own copy of the project.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mlops_rakuten.ops.commands import run
from mlops_rakuten.ops.remote import configure_remote

from conftest import reproduced_project
from s3_server import SeaweedS3

pytestmark = pytest.mark.server

TOKEN = f"test-{secrets.token_hex(8)}"
IN_SYNC = "Cache and remote 'origin' are in sync."
BULK_FILES = 400  # enough objects that a push can be caught part-way


def start(server: SeaweedS3) -> None:
    """Start the server; if it cannot, fail (never skip) with its log."""
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory) -> Iterator[SeaweedS3]:
    server = SeaweedS3(tmp_path_factory.mktemp("s3"), TOKEN)
    try:
        start(server)
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: SeaweedS3) -> SeaweedS3:
    """The module's server, running (a test that stopped it and failed may have left it down)."""
    if not s3_server.running:
        start(s3_server)
    return s3_server


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A demo project after `dvc repro`, everything committed, no remote yet: copied by each test."""
    return reproduced_project(tmp_path_factory.mktemp("built") / "project")


@pytest.fixture
def workspace(built: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "project", symlinks=True))


@pytest.fixture
def project(workspace: Path, s3: SeaweedS3) -> Path:
    """A copy of the built project with the local server as its `origin` remote."""
    configure_remote(workspace, s3.endpoint, TOKEN)
    return workspace


def dvc(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(["dvc", *args], project, check=check)


def cached_outputs(project: Path) -> list[str]:
    """The raw data and every stage output kept in DVC's cache (metrics and plots are in git)."""
    outputs = ["data/raw"]
    for stage in yaml.safe_load((project / "dvc.yaml").read_text())["stages"].values():
        for out in stage.get("outs", []):
            name, options = (out, {}) if isinstance(out, str) else next(iter(out.items()))
            if options.get("cache", True):
                outputs.append(name)
    return outputs


def file_hashes(root: Path, paths: list[str] | None = None) -> dict[str, str]:
    """sha256 of every file under ``paths`` (default: all of ``root`` but git's and DVC's bookkeeping)."""
    hashes = {}
    for top in [root / p for p in paths] if paths is not None else [root]:
        for path in [top] if top.is_file() else sorted(top.rglob("*")):
            name = path.relative_to(root).as_posix()
            if path.is_file() and not name.startswith((".git/", ".dvc/tmp/")):
                hashes[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def cache_keys(project: Path) -> set[str]:
    """The object keys the local cache's files have on the remote (same layout: files/md5/ab/cdef...)."""
    cache = project / ".dvc" / "cache"
    return {p.relative_to(cache).as_posix() for p in (cache / "files").rglob("*") if p.is_file()}


def object_keys(project: Path, outputs: list[str]) -> set[str]:
    """The remote keys of the files under ``outputs`` (DVC 3 names objects by the md5 of their bytes)."""
    keys = set()
    for name in file_hashes(project, outputs):
        digest = hashlib.md5((project / name).read_bytes()).hexdigest()
        keys.add(f"files/md5/{digest[:2]}/{digest[2:]}")
    return keys


def add_unique_file(project: Path) -> None:
    """Track a file no other test has pushed, so a push to the shared bucket has work to do."""
    (project / "notes.txt").write_text(f"run {secrets.token_hex(16)}\n")
    dvc(project, "add", "-q", "notes.txt")


def remove_cache_and_outputs(project: Path, outputs: list[str]) -> None:
    shutil.rmtree(project / ".dvc" / "cache")
    for name in outputs:
        path = project / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()


# Case 1: repro (done by the `built` fixture) then push; the remote holds every cached object.
def test_push_puts_every_cached_object_on_the_remote(project: Path, s3: SeaweedS3):
    pushed = dvc(project, "push")
    print("case 1 push:", pushed.stdout.strip())
    # Not the whole cache: it also keeps metrics and plots (cache: false, in git), which are not pushed.
    assert object_keys(project, cached_outputs(project)) <= s3.keys("files/")
    status = dvc(project, "status", "-c").stdout
    print("case 1 status -c:", status.strip())
    assert IN_SYNC in status


# Case 2: with no cache and no outputs, a pull restores everything byte for byte.
def test_pull_into_an_empty_cache_restores_identical_files_and_nothing_to_rerun(project: Path):
    dvc(project, "push")
    outputs = cached_outputs(project)
    before = file_hashes(project, outputs)
    remove_cache_and_outputs(project, outputs)

    pulled = dvc(project, "pull")
    print("case 2 pull:", pulled.stdout.strip())
    assert file_hashes(project, outputs) == before
    assert "Data and pipelines are up to date." in dvc(project, "status").stdout
    repro = dvc(project, "repro").stdout
    assert "Running stage" not in repro, repro


# Case 3: the server is down: push fails clearly and touches nothing; once it is back, push succeeds.
def test_push_to_a_stopped_server_fails_cleanly_then_succeeds(project: Path, s3: SeaweedS3):
    add_unique_file(project)
    before = file_hashes(project)
    s3.stop()
    failed = dvc(project, "push", check=False)
    print("case 3 push, server down:", failed.returncode, failed.stderr.strip())
    assert failed.returncode != 0
    assert "Could not connect to the endpoint URL" in failed.stderr and s3.endpoint in failed.stderr
    assert file_hashes(project) == before

    start(s3)
    pushed = dvc(project, "push")
    print("case 3 push, server back:", pushed.stdout.strip())
    assert "pushed" in pushed.stdout
    assert IN_SYNC in dvc(project, "status", "-c").stdout


def start_push(project: Path, **env: str) -> subprocess.Popen:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **env}
    return subprocess.Popen(
        ["dvc", "push"], cwd=project, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def wait_for_uploads(s3: SeaweedS3, keys: set[str], push: subprocess.Popen, more_than: int) -> None:
    """Return as soon as more than ``more_than`` of ``keys`` are on the server, the push still running."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert push.poll() is None, f"push ended before it could be interrupted: {push.communicate()}"
        if len(keys & s3.keys("files/")) > more_than:
            return
        time.sleep(0.05)
    pytest.fail(f"push did not get past {more_than} uploaded objects in 120 s")


# Case 4: a push killed part-way, then one cut off by the server going down; the next push completes.
def test_interrupted_push_completes_on_the_next_push_and_pull_round_trips(project: Path, s3: SeaweedS3):
    known = cache_keys(project)
    bulk = project / "data" / "bulk"
    bulk.mkdir()
    for i in range(BULK_FILES):
        (bulk / f"{i:04d}.bin").write_bytes(os.urandom(1024))
    dvc(project, "add", "-q", "data/bulk")
    bulk_keys = cache_keys(project) - known  # random bytes: none of these is on the server yet

    push = start_push(project)  # killed with no chance to clean up (CI timeout, closed laptop)
    wait_for_uploads(s3, bulk_keys, push, more_than=10)
    push.kill()
    push.communicate()
    after_kill = len(bulk_keys & s3.keys("files/"))
    print(f"case 4 push killed: {after_kill}/{len(bulk_keys)} objects uploaded")
    assert 0 < after_kill < len(bulk_keys)

    # With the server gone, every object left fails on its own after botocore's retries (~8 s each, 8 at a
    # time: minutes for this set). One attempt per object gives the same failure, fast.
    push = start_push(project, AWS_MAX_ATTEMPTS="1")
    wait_for_uploads(s3, bulk_keys, push, more_than=after_kill)
    s3.stop()
    _, stderr = push.communicate(timeout=120)
    lines = stderr.strip().splitlines()
    print("case 4 push, server stopped mid-push:", push.returncode, lines[0], "...", lines[-1])
    assert push.returncode != 0 and "Could not connect to the endpoint URL" in stderr

    start(s3)
    cut_off = len(bulk_keys & s3.keys("files/"))
    print(f"case 4 after the server stop: {cut_off}/{len(bulk_keys)} objects uploaded")
    assert after_kill < cut_off < len(bulk_keys)
    pushed = dvc(project, "push")
    print("case 4 third push:", pushed.stdout.strip())
    assert bulk_keys <= s3.keys("files/")
    assert IN_SYNC in dvc(project, "status", "-c").stdout

    before = file_hashes(project, ["data/bulk"])
    remove_cache_and_outputs(project, ["data/bulk"])
    dvc(project, "pull", "data/bulk.dvc")
    assert file_hashes(project, ["data/bulk"]) == before


# Case 5: a wrong token: push and status fail with the server's refusal; nothing local is lost.
def test_wrong_credentials_fail_clearly_and_lose_nothing(project: Path, s3: SeaweedS3):
    add_unique_file(project)
    configure_remote(project, s3.endpoint, "wrong-token")
    before = file_hashes(project)
    for command in (["push"], ["status", "-c"]):
        failed = dvc(project, *command, check=False)
        print(f"case 5 {' '.join(command)}, wrong token:", failed.returncode, failed.stderr.strip())
        assert failed.returncode != 0 and "Forbidden" in failed.stderr
    assert file_hashes(project) == before

    configure_remote(project, s3.endpoint, TOKEN)
    assert "pushed" in dvc(project, "push").stdout


def make_dagshub_remote(project: Path, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    # -o setup: the temp copy has no venv of its own; `rakuten` comes from this one (on PATH via run()).
    return run(["make", "--no-print-directory", "-o", "setup", "dagshub-remote", *args], project, check=check, **kwargs)


# Case 6: `make dagshub-remote` keeps the token out of git and out of the output.
def test_make_dagshub_remote_keeps_the_token_out_of_git_and_output(workspace: Path):
    token = f"dhp_fake_{secrets.token_hex(12)}"
    repo = f"mlops-rakuten-{secrets.token_hex(3)}"  # never what the copied .dvc/config may already name
    args = ("OWNER=rakuten-team", f"REPO={repo}")
    config, local = workspace / ".dvc" / "config", workspace / ".dvc" / "config.local"
    written = []
    for _ in range(2):  # the second run is harmless: same files, same output
        result = make_dagshub_remote(workspace, *args, env={"DAGSHUB_TOKEN": token})
        assert token not in result.stdout + result.stderr
        written.append((result.stdout, config.read_bytes(), local.read_bytes()))
    print("case 6 make dagshub-remote:", written[0][0].strip())
    assert written[0] == written[1]
    text = config.read_text()
    assert "url = s3://dvc" in text and f"endpointurl = https://dagshub.com/rakuten-team/{repo}.s3" in text
    assert "remote = origin" in text and token not in text
    assert local.read_text().count(token) == 2 and local.stat().st_mode & 0o077 == 0  # only the owner reads it
    assert run(["git", "status", "--porcelain"], workspace).stdout == " M .dvc/config\n"
    assert dvc(workspace, "remote", "list").stdout.split() == ["origin", "s3://dvc", "(default)"]
    # Revisions from before the remote (here HEAD) still load with the local credentials.
    dvc(workspace, "data", "status")

    run(["git", "commit", "-q", "-a", "-m", "DagsHub remote"], workspace)
    assert "failed to load" not in dvc(workspace, "params", "diff", "HEAD~1").stderr
    assert run(["git", "grep", "-I", token], workspace, check=False).returncode == 1  # no match
    assert token not in run(["git", "log", "-p", "--all"], workspace).stdout
    assert ".dvc/config.local" not in run(["git", "ls-files"], workspace).stdout.splitlines()

    missing = make_dagshub_remote(workspace, "OWNER=rakuten-team", check=False)
    assert missing.returncode != 0 and "usage: make dagshub-remote OWNER=" in missing.stderr


def test_dagshub_remote_prompts_for_the_token_when_the_variable_is_unset(workspace: Path):
    # A new session has no terminal, so getpass reads stdin (as it would read the hidden prompt).
    cmd = ["rakuten", "dagshub-remote", "--owner", "team", "--repo", "rakuten"]
    typed = run(cmd, workspace, env={"DAGSHUB_TOKEN": ""}, input="typed-token\n", start_new_session=True)
    assert "typed-token" not in typed.stdout + typed.stderr
    assert "typed-token" in (workspace / ".dvc" / "config.local").read_text()
    empty = run(cmd, workspace, check=False, env={"DAGSHUB_TOKEN": ""}, input="", start_new_session=True)
    assert empty.returncode == 1 and "error: no DagsHub token" in empty.stderr


# `make run`'s first step on a fresh clone: `rakuten ensure-raw-data` pulls data and outputs.
def test_fresh_clone_gets_data_and_outputs_from_ensure_raw_data(project: Path, s3: SeaweedS3, tmp_path: Path):
    run(["git", "commit", "-q", "-a", "-m", "shared remote"], project)  # .dvc/config names the remote
    dvc(project, "push")
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    configure_remote(clone, s3.endpoint, TOKEN)  # the teammate's own token, in their config.local

    log = run(["rakuten", "ensure-raw-data"], clone).stderr
    assert "data/raw pulled from the remote" in log, log
    outputs = cached_outputs(project)
    assert file_hashes(clone, outputs) == file_hashes(project, outputs)
    repro = dvc(clone, "repro").stdout
    assert "Running stage" not in repro, repro


def test_make_data_status_compares_the_cache_with_the_reachable_remote(project: Path):
    dvc(project, "push")
    result = run(["make", "--no-print-directory", "-o", "setup", "data-status"], project, check=False)
    print("make data-status:", result.stdout.strip())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes." in result.stdout and IN_SYNC in result.stdout
    assert "cannot reach" not in result.stdout
