"""Schemathesis against the live app: every operation and every check, as a user and as an admin.

A real `rakuten serve` on loopback over a small trained demo project of its own (POST /ingest
appends to it and POST /train runs `dvc repro` on it). The example count is bounded so both
runs take a couple of minutes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from serve_support import auth, build_project, free_port, make_settings, start_server, stop

pytestmark = pytest.mark.server

MAX_EXAMPLES = 15
CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("schemathesis")
    settings = make_settings(build_project(root / "project"), root / "secrets")
    port = free_port()
    process = start_server(settings, port, root / "server.log")
    yield settings, f"http://127.0.0.1:{port}", root / "server.log"
    stop(process)


@pytest.mark.parametrize("name, role", [("bob", "user"), ("alice", "admin")])
def test_every_operation_passes_every_check(served, name, role):
    settings, url, log = served
    st = Path(sys.executable).parent / "st"
    result = subprocess.run(
        [
            str(st),
            "--config-file",
            str(CONFIG),
            "run",
            f"{url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "1",
            "--request-timeout",
            "60",
            "-H",
            auth(settings, name, role)["Authorization"].join(["Authorization: ", ""]),
        ],
        cwd=log.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )  # its cache stays there
    assert result.returncode == 0, f"{result.stdout[-6000:]}\n{result.stderr[-2000:]}\n{log.read_text()[-3000:]}"
