"""What `rakuten serve` does at start: a server nobody can log in to says so, with the fix; its event loop is asyncio's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from mlops_rakuten.serve.settings import Settings

from serve_support import SECRET, free_port, server_env, shared_trained_project, start_server, stop, wait_until

pytestmark = pytest.mark.server


def fresh_settings(tmp_path_factory, tmp_path: Path) -> Settings:
    """A server on the shared trained project, with no users yet and its own state."""
    return Settings(
        jwt_secret=SECRET,
        project_dir=shared_trained_project(tmp_path_factory),
        users_file=tmp_path / "users.json",
        state_dir=tmp_path / "state",
        token_minutes=30,
        login_per_minute=10_000,
        login_failures_per_minute=10_000,
    )


def test_a_server_without_users_logs_the_command_that_adds_one(tmp_path_factory, tmp_path):
    settings = fresh_settings(tmp_path_factory, tmp_path)
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


def test_the_server_runs_on_asyncio_even_with_uvloop_installed(tmp_path_factory, tmp_path, monkeypatch):
    """uvicorn's default loop is uvloop when it is importable, and under libuv a burst beyond the descriptor
    limit is met by closing pending connections without a word to `on_loop_error` (serve/connections.py)."""
    fake = tmp_path / "site"
    (fake / "uvloop").mkdir(parents=True)
    (fake / "uvloop" / "__init__.py").write_text(
        "def new_event_loop():\n    raise RuntimeError('uvloop chosen as the event loop')\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(fake))  # the server's environment is this one's (server_env)
    settings = fresh_settings(tmp_path_factory, tmp_path)
    port, log = free_port(), tmp_path / "server.log"
    process = start_server(settings, port, log)  # fails, with the server's output, if it exits instead
    stop(process)
    assert "uvloop chosen" not in log.read_text()
