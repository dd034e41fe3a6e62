"""Helpers for the tests/test_serve_*.py modules: trained projects, settings, users, real servers."""

from __future__ import annotations

import os
import re
import resource
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from mlops_rakuten.devtools.project_copy import add_raw_data, copy_project, run
from mlops_rakuten.serve.app import create_app
from mlops_rakuten.serve.auth import create_token
from mlops_rakuten.serve.settings import Settings
from mlops_rakuten.serve.users import User, add_user, list_users

from conftest import ROOT, needs

SECRET = "test-only-secret-" + "0123456789abcdef" * 2  # never used outside these tests
PASSWORDS = {"alice": "alice-password", "bob": "bob-password", "carol": "carol-password"}
ROWS = 600  # small enough for a ~25 s `dvc repro`, large enough for every class to be learnt

_shared: dict[str, Path] = {}


def build_project(folder: Path, trained: bool = True) -> Path:
    project = copy_project(ROOT, folder)
    add_raw_data(project, rows=ROWS)
    if trained:
        run(["dvc", "repro"], project)
    return project


def shared_trained_project(tmp_path_factory) -> Path:
    """One trained project for the modules that only read it (built once per session)."""
    if "trained" not in _shared:
        _shared["trained"] = build_project(tmp_path_factory.mktemp("served") / "project")
    return _shared["trained"]


def make_settings(project: Path, secrets: Path, token_minutes: int = 30) -> Settings:
    """Settings for ``project`` with alice (admin), bob (user) and carol (inactive user)."""
    users = secrets / "users.json"
    if not users.exists():
        add_user(users, "alice", "admin", PASSWORDS["alice"])
        add_user(users, "bob", "user", PASSWORDS["bob"])
        add_user(users, "carol", "user", PASSWORDS["carol"], active=False)
    # Login limits out of the way: test_serve_abuse sets its own to test them.
    return Settings(
        jwt_secret=SECRET,
        project_dir=project,
        users_file=users,
        state_dir=project / ".dvc" / "tmp" / "serve",
        token_minutes=token_minutes,
        login_per_minute=10_000,
        login_failures_per_minute=10_000,
    )


def auth(settings: Settings, name: str, role: str) -> dict[str, str]:
    """Headers with a real signed token for ``name`` as the users file has it (no login, so no argon2 second per test)."""
    stored = {user.name: user for user in list_users(settings.users_file)}.get(name)
    user = User(name, role, True, stored.token_version, stored.id) if stored else User(name, role, True)
    token, _ = create_token(settings, user)
    return {"Authorization": f"Bearer {token}"}


def client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "RAKUTEN_JWT_SECRET": settings.jwt_secret,
        "RAKUTEN_PROJECT_DIR": str(settings.project_dir),
        "RAKUTEN_USERS_FILE": str(settings.users_file),
        "RAKUTEN_STATE_DIR": str(settings.state_dir),
        "RAKUTEN_LOGIN_PER_MINUTE": str(settings.login_per_minute),
        "RAKUTEN_LOGIN_FAILURES_PER_MINUTE": str(settings.login_failures_per_minute),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def wait_until(
    check, what: str, timeout: float = 60.0, process: subprocess.Popen | None = None, log: Path | None = None
):
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            output = log.read_text() if log and log.exists() else ""
            raise AssertionError(f"{what}: process exited with {process.returncode}\n{output}")
        try:
            result = check()
        except (httpx.HTTPError, OSError):
            result = None
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def start_server(
    settings: Settings, port: int, log: Path, workers: int = 1, new_session: bool = False, open_files: int | None = None
) -> subprocess.Popen:
    """`rakuten serve` in a subprocess (output to ``log``), returned once /health answers.

    ``new_session``: the server leads its own process group, so a test can kill it with all its children.
    ``open_files``: its file-descriptor limit, soft and hard (`ulimit -n`).
    """

    def limit_open_files() -> None:
        assert open_files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    with open(log, "a") as output:  # a file, not a pipe: a full pipe would block the server
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "rakuten"),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=server_env(settings),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
            preexec_fn=limit_open_files if open_files else None,
        )
    wait_until(
        lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200,
        "rakuten serve to answer /health",
        process=process,
        log=log,
    )
    return process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def render(template: str, values: dict[str, str]) -> str:
    """What envsubst does with the names listed: every ${RAKUTEN_*} must be given, nginx's $vars stay."""
    rendered = re.sub(r"\$\{(RAKUTEN_\w+)\}", lambda m: values[m.group(1)], template)
    assert not [line for line in rendered.splitlines() if "${" in line.split("#")[0]]
    return rendered


def self_signed(folder: Path) -> tuple[Path, Path]:
    """What `make certs` does, into a temp folder, valid for 127.0.0.1 so the client can verify it."""
    cert, key = folder / "server.crt", folder / "server.key"
    subprocess.run(
        [
            needs("openssl"),
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def start_nginx(app_port: int, prefix: Path) -> tuple[subprocess.Popen, int, int, ssl.SSLContext]:
    """Debian's nginx with deployments/nginx/nginx.conf in front of ``app_port``, once it proxies /health.

    Returns the process, the HTTPS and HTTP ports, and an SSL context trusting its certificate.
    """
    nginx_binary = needs("nginx")
    cert, key = self_signed(prefix)
    https_port, http_port = free_port(), free_port()
    config = render(
        (ROOT / "deployments/nginx/nginx.conf").read_text(),
        {
            "RAKUTEN_UPSTREAM": f"127.0.0.1:{app_port}",
            "RAKUTEN_WRITER_UPSTREAM": f"127.0.0.1:{app_port}",
            "RAKUTEN_HTTPS_PORT": str(https_port),
            "RAKUTEN_HTTP_PORT": str(http_port),
            "RAKUTEN_TLS_CERT": str(cert),
            "RAKUTEN_TLS_KEY": str(key),
        },
    )
    (prefix / "nginx.conf").write_text(config)
    command = [nginx_binary, "-p", str(prefix), "-c", "nginx.conf", "-e", "stderr"]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    log = prefix / "nginx.out"
    with open(log, "w") as output:
        process = subprocess.Popen([*command, "-g", "daemon off;"], stdout=output, stderr=subprocess.STDOUT)
    context = ssl.create_default_context(cafile=str(cert))
    wait_until(
        lambda: httpx.get(f"https://127.0.0.1:{https_port}/health", verify=context, timeout=2).is_success,
        "nginx to proxy /health",
        process=process,
        log=log,
    )
    return process, https_port, http_port, context
