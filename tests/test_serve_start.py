"""What `rakuten serve` tells a person at start: a server nobody can log in to says so, with the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from mlops_rakuten.serve.settings import Settings

from serve_support import SECRET, free_port, server_env, shared_trained_project, start_server, stop, wait_until

pytestmark = pytest.mark.server


def test_a_server_without_users_logs_the_command_that_adds_one(tmp_path_factory, tmp_path):
    project = shared_trained_project(tmp_path_factory)
    settings = Settings(
        jwt_secret=SECRET,
        project_dir=project,
        users_file=tmp_path / "users.json",
        state_dir=tmp_path / "state",
        token_minutes=30,
        login_per_minute=10_000,
        login_failures_per_minute=10_000,
    )
    port, log = free_port(), tmp_path / "server.log"
    process = start_server(settings, port, log)
    try:
        warnings = [line for line in log.read_text().splitlines() if "no users yet" in line]
        assert len(warnings) == 1 and "`rakuten user add NAME --role admin`" in warnings[0], log.read_text()
        # The command it names works on the running server, without a restart.
        subprocess.run(
            [str(Path(sys.executable).parent / "rakuten"), "user", "add", "ada", "--role", "admin", "--password-stdin"],
            input="ada-password\n",
            text=True,
            env=server_env(settings),
            check=True,
        )
        login = {"username": "ada", "password": "ada-password"}  # the file is re-read within a second
        wait_until(
            lambda: httpx.post(f"http://127.0.0.1:{port}/token", data=login).status_code == 200,
            "the new user to log in",
            timeout=10,
        )
    finally:
        stop(process)
