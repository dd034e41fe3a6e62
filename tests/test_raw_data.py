"""`rakuten ensure-raw-data` (make run's data step) without a reachable remote: regenerate the tracked demo set;
`make data-status` without one. (With a real S3 remote: tests/test_remote.py.)"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from mlops_rakuten.devtools.project_copy import copy_project
from mlops_rakuten.ops.remote import reachable

from conftest import ROOT, run


def project_with_committed_pointer(tmp_path: Path) -> Path:
    project = copy_project(ROOT, tmp_path / "project")
    (project / "data").mkdir(exist_ok=True)
    shutil.copy2(ROOT / "data/raw.dvc", project / "data/raw.dvc")
    return project


def test_regenerates_the_demo_set_the_committed_pointer_tracks(tmp_path: Path):
    project = project_with_committed_pointer(tmp_path)
    pointer = (project / "data/raw.dvc").read_text()
    result = run(["rakuten", "ensure-raw-data"], project)
    assert "matches data/raw.dvc" in result.stderr
    assert (project / "data/raw.dvc").read_text() == pointer
    assert "up to date" in run(["dvc", "status", "data/raw.dvc"], project).stdout
    # cached, so `dvc push` and queued experiments have it
    assert any((project / ".dvc/cache").rglob("*.dir"))
    # a second call leaves present data alone
    assert "nothing to fetch" in run(["rakuten", "ensure-raw-data"], project).stderr


def test_refuses_when_the_pointer_is_not_the_demo_set(tmp_path: Path):
    project = project_with_committed_pointer(tmp_path)
    dvc_file = project / "data/raw.dvc"
    other = dvc_file.read_text().replace("md5: ", "md5: 0", 1).replace(".dir", "", 1)[:-1] + "\n"
    dvc_file.write_text(other)
    result = run(["rakuten", "ensure-raw-data"], project, check=False)
    assert result.returncode == 1
    assert "data/raw.dvc tracks data other than the built-in demo set" in result.stderr
    assert "dvc pull" in result.stderr
    assert not (project / "data/raw").exists()
    assert dvc_file.read_text() == other


def test_data_left_from_another_version_is_replaced_never_lost(tmp_path: Path):
    """After a `git pull` that moves data/raw.dvc, make run must not keep (and re-record) the old data."""
    project = project_with_committed_pointer(tmp_path)
    dvc_file = project / "data/raw.dvc"
    pointer = dvc_file.read_text()
    run(["rakuten", "ensure-raw-data"], project)
    x_csv = project / "data/raw/X_train_update.csv"
    recorded_bytes = x_csv.read_bytes()

    # an older version, recorded in the cache: replaced by the pointer's version
    run(["rakuten", "demo-data", "--rows", "300", "--seed", "3", "--out", "data/raw"], project)
    run(["dvc", "add", "-q", "data/raw"], project)
    dvc_file.write_text(pointer)
    result = run(["rakuten", "ensure-raw-data"], project)
    assert "restored from the DVC cache" in result.stderr
    assert x_csv.read_bytes() == recorded_bytes and dvc_file.read_text() == pointer

    # files in no cache (hand-copied, never added): refused, nothing removed, both ways out named
    x_csv.write_bytes(recorded_bytes + b"99999,hand copied,,1,1\n")
    result = run(["rakuten", "ensure-raw-data"], project, check=False)
    assert result.returncode == 1
    assert "in no DVC cache" in result.stderr and "dvc add data/raw" in result.stderr
    assert x_csv.read_bytes().endswith(b"hand copied,,1,1\n") and dvc_file.read_text() == pointer


@contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield port


@contextmanager
def blackhole() -> Iterator[int]:
    """A loopback port that never answers, like a host behind a dead network: connecting times out.

    A listening socket with a backlog of 0 whose one queued connection is never accepted: the kernel
    drops every later SYN.
    """
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        fillers = [socket.socket() for _ in range(2)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(server.getsockname())
        time.sleep(0.2)
        try:
            yield server.getsockname()[1]
        finally:
            for filler in fillers:
                filler.close()


UNREACHABLE = {"closed-port": closed_port, "blackhole": blackhole}


@pytest.mark.parametrize("kind", UNREACHABLE)
def test_reachable_gives_up_after_the_connect_timeout(kind):
    with UNREACHABLE[kind]() as port:
        start = time.monotonic()
        assert not reachable(("127.0.0.1", port), timeout=1.0)
        assert time.monotonic() - start < 3.0  # the timeout, not the minutes a SYN retry cycle takes


def add_remote(project: Path, endpoint: str) -> None:
    run(["dvc", "remote", "add", "-d", "origin", "s3://dvc"], project)
    run(["dvc", "remote", "modify", "origin", "endpointurl", endpoint], project)


@pytest.mark.parametrize("kind", UNREACHABLE)
def test_an_unreachable_remote_is_named_in_one_line_and_the_demo_data_used(tmp_path: Path, kind):
    project = project_with_committed_pointer(tmp_path)
    with UNREACHABLE[kind]() as port:
        endpoint = f"http://127.0.0.1:{port}"
        add_remote(project, endpoint)
        log = run(["rakuten", "ensure-raw-data"], project).stderr
    print(log)
    assert [line.split(": ", 1)[1] for line in log.splitlines() if "cannot reach" in line] == [
        f"cannot reach {endpoint}: using the demo data"
    ]
    assert "pull" not in log  # dvc pull was never tried
    assert "matches data/raw.dvc" in log


def make_data_status(project: Path) -> subprocess.CompletedProcess:
    # -o: the temp copy uses this venv (its bin/ is first on PATH via run()) rather than installing one.
    return run(["make", "--no-print-directory", "-o", "setup", "data-status"], project, check=False)


def test_data_status_without_a_remote_shows_the_local_status_and_how_to_add_one(project: Path):
    (project / "data/raw/X_train_update.csv").write_text("changed\n")
    result = make_data_status(project)
    assert result.returncode == 0, result.stderr
    assert "DVC uncommitted changes:" in result.stdout and "modified: data/raw/" in result.stdout  # local status
    assert "No DVC remote is configured, so only the local status is shown" in result.stdout
    assert (
        "make dagshub-remote OWNER=<user or org> REPO=<repo>" in result.stdout and "dvc remote add -d" in result.stdout
    )
    assert "ERROR" not in result.stdout + result.stderr


def test_data_status_names_an_unreachable_remote(project: Path):
    with blackhole() as port:
        add_remote(project, f"http://127.0.0.1:{port}")
        result = make_data_status(project)
    assert result.returncode != 0
    assert f"cannot reach http://127.0.0.1:{port}: only the local status is shown" in result.stdout
    assert "No changes." in result.stdout  # the local part still ran
