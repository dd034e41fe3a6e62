"""The API probed from outside, second round: each attack against a real `rakuten serve` (and nginx, and
the `rakuten user` commands) on loopback, over a small untrained project of this module's own.

Revoked tokens stay revoked, the users file is never readable by others, the per-address login
limit behind nginx counts the address nginx saw, /health keeps the users file's details to itself,
any JSON body is a 4xx, slow clients are cut off while /health stays fast, an ingest row with too
many fields is refused, a retried ingest with its key is not added twice, and the /predict schema
says what is accepted. A crash during `evaluate` is in tests/test_serve_crash.py.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import stat
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
import jsonschema_rs
import pytest

from mlops_rakuten.core.paths import X_FILE, Y_FILE

from conftest import run
from serve_support import (
    auth,
    build_project,
    free_port,
    make_settings,
    server_env,
    start_nginx,
    start_server,
    stop,
    wait_until,
)

pytestmark = pytest.mark.server
CLI = [str(Path(sys.executable).parent / "rakuten")]
# docs/serving-limits.md: a change to the users file applies within a second (5 s: room for a loaded
# machine); a request's head must arrive within 10 s, its body within 10 s plus one second per 32 KiB
# (the 4,000-byte bodies here: 0.12 s more).
NOTICED_SECONDS = 5.0
PROMISED_SECONDS = 10


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    root = tmp_path_factory.mktemp("attacks")
    return make_settings(build_project(root / "project", trained=False), root / "secrets")


@pytest.fixture(scope="module")
def server(settings, tmp_path_factory):
    """Yields (base URL, server log)."""
    log = tmp_path_factory.mktemp("attacks-server") / "server.log"
    port = free_port()
    process = start_server(settings, port, log)
    yield f"http://127.0.0.1:{port}", log
    stop(process)


def cli(settings, *args: str, password: str | None = None):
    return run(
        [*CLI, "user", *args, *(["--password-stdin"] if password else [])],
        settings.project_dir,
        env=server_env(settings),
        input=f"{password}\n" if password else None,
    )


def login(url: str, name: str, password: str) -> dict[str, str]:
    """Headers with a token, once the server has noticed the users file let ``name`` in with ``password``."""

    def token() -> str | None:
        response = httpx.post(f"{url}/token", data={"username": name, "password": password})
        return response.json()["access_token"] if response.status_code == 200 else None

    return {"Authorization": f"Bearer {wait_until(token, f'{name} to log in', timeout=NOTICED_SECONDS)}"}


def test_a_removed_user_added_again_does_not_revive_its_old_tokens(settings, server):
    url, _ = server
    cli(settings, "add", "gina", password="gina-password")
    old = login(url, "gina", "gina-password")
    assert httpx.get(f"{url}/info", headers=old).status_code == 200
    cli(settings, "remove", "gina")
    wait_until(
        lambda: httpx.get(f"{url}/info", headers=old).status_code == 401, "gina's removal", timeout=NOTICED_SECONDS
    )
    cli(settings, "add", "gina", password="new-pass-123")
    listed = [line.split() for line in cli(settings, "list").stdout.splitlines()]
    assert ["gina", "user", "yes", "0"] in listed  # the version starts again: the random id tells them apart
    new = login(url, "gina", "new-pass-123")  # the server has read the new gina
    refused = httpx.get(f"{url}/info", headers=old)
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    assert httpx.get(f"{url}/info", headers=new).status_code == 200


def test_the_users_file_is_never_readable_by_others(tmp_path):
    """A reader polls the (world-readable) folder during 20 `rakuten user add` runs: no file is ever 0644."""
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    env = {**os.environ, "RAKUTEN_USERS_FILE": str(folder / "users.json")}
    seen, done = {}, threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                for entry in os.scandir(folder):
                    mode = stat.S_IMODE(entry.stat().st_mode)
                    if mode & 0o077:
                        seen[entry.name] = oct(mode)
            except FileNotFoundError:
                continue  # a temp file renamed between the listing and its stat

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for i in range(20):
            run([*CLI, "user", "add", f"user{i}", "--password-stdin"], tmp_path, env=env, input="long-password\n")
    finally:
        done.set()
        watcher.join()
    assert not seen, f"readable by group or others at some instant: {seen}"
    assert stat.S_IMODE((folder / "users.json").stat().st_mode) == 0o600


@pytest.fixture(scope="module")
def behind_nginx(settings, tmp_path_factory):
    """Another server on the same users, 5 logins per address and minute, behind the repo's nginx config."""
    folder = tmp_path_factory.mktemp("behind-nginx")
    port = free_port()
    strict = dataclasses.replace(settings, login_per_minute=5)
    app = start_server(strict, port, folder / "server.log")
    proxy, https_port, _, context = start_nginx(port, folder)
    yield f"https://127.0.0.1:{https_port}", context
    stop(proxy)
    stop(app)


def test_the_login_limit_counts_the_address_nginx_saw_whatever_the_client_claims(behind_nginx):
    url, context = behind_nginx
    statuses = []
    with httpx.Client(base_url=url, verify=context) as api:
        for i in range(8):  # fewer than nginx's own burst of 10: the app's limit must answer
            response = api.post(
                "/token",
                data={"username": f"nobody{i}", "password": "wrong-password"},
                headers={"X-Forwarded-For": f"10.1.1.{i}"},
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert "from this address" in response.json()["detail"]  # the app's answer, not nginx's
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429] * 3, statuses


def test_health_says_degraded_and_keeps_the_details_for_admins(settings, server):
    url, log = server
    admin, user = auth(settings, "alice", "admin"), auth(settings, "bob", "user")
    good = settings.users_file.read_text()
    try:
        settings.users_file.write_text('{"users": {"mallory": {"role": "root"}}}')
        health = wait_until(
            lambda: (answer := httpx.get(f"{url}/health")).json()["status"] == "degraded" and answer,
            "/health to say degraded",
            timeout=NOTICED_SECONDS,
        )
        assert health.json() == {"status": "degraded", "model_ready": False}
        assert settings.users_file.name not in health.text and "mallory" not in health.text
        assert "mallory" in httpx.get(f"{url}/info", headers=admin).json()["users_file_error"]
        assert "users_file_error" not in httpx.get(f"{url}/info", headers=user).json()
        assert "mallory" in log.read_text()  # and in the log
    finally:
        settings.users_file.write_text(good)
    wait_until(lambda: httpx.get(f"{url}/health").json()["status"] == "ok", "/health ok again", timeout=NOTICED_SECONDS)


@pytest.mark.parametrize("depth", [900, 1_000, 100_000])
def test_any_json_body_is_a_4xx_and_the_connection_stays_usable(settings, server, depth):
    url, log = server
    with httpx.Client(base_url=url, headers=auth(settings, "bob", "user")) as api:
        for body in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
            response = api.post("/predict", content=body, headers={"Content-Type": "application/json"})
            assert response.status_code == 422, response.text[:300]
            assert response.headers.get("connection") != "close"
        assert api.get("/health").status_code == 200
    assert "RecursionError" not in log.read_text()


def test_the_predict_schema_says_what_is_accepted(settings, server):
    """A title of separators (Python's whitespace, stripped by cleaning) is outside the schema, and refused."""
    url, _ = server
    schema = httpx.get(f"{url}/openapi.json").json()
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    product = {"designation": "\u001c"}
    # jsonschema_rs: the validator Schemathesis checks with
    assert not jsonschema_rs.is_valid(body, product)
    assert jsonschema_rs.is_valid(body, {"designation": "Piscine \u001c Intex"})
    response = httpx.post(f"{url}/predict", json=product, headers=auth(settings, "bob", "user"))
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "designation"]


def slow_clients(port: int, count: int, head: bytes, trickle: bytes, seconds: float) -> list[float | None]:
    """``count`` connections sending ``head`` and then ``trickle`` once a second; how long the server kept each."""
    opened: list = []
    kept: list[float | None] = [None] * count
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(head)
        sock.setblocking(False)
        opened.append((sock, time.monotonic()))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and None in kept:
        time.sleep(1)
        for i, (sock, start) in enumerate(opened):
            if kept[i] is not None:
                continue
            try:
                if sock.recv(4096) == b"":
                    kept[i] = time.monotonic() - start
                    continue
                kept[i] = time.monotonic() - start  # an answer (408 or 503): the server closes right after
            except BlockingIOError:
                try:
                    sock.send(trickle)
                except OSError:
                    kept[i] = time.monotonic() - start
            except OSError:
                kept[i] = time.monotonic() - start
    for sock, _ in opened:
        sock.close()
    return kept


def health_times(url: str, stop_event: threading.Event, times: list[float]) -> None:
    while not stop_event.is_set():
        start = time.monotonic()
        try:
            ok = httpx.get(f"{url}/health", timeout=10).status_code == 200
        except httpx.HTTPError:
            ok = False
        times.append(time.monotonic() - start if ok else float("inf"))
        time.sleep(0.2)


BODY_HEAD = (
    b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: 4000\r\n\r\n"
)
PARTIAL_HEAD = b"GET /health HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize("head, trickle", [(BODY_HEAD, b"a"), (PARTIAL_HEAD, b"X-a: b\r\n")], ids=["body", "head"])
def test_slow_clients_are_cut_off_and_health_stays_fast(server, head, trickle):
    url, log = server
    port = int(url.rsplit(":", 1)[1])
    stop_event = threading.Event()
    times: list[float] = []  # /health response seconds, filled by the watcher
    watcher = threading.Thread(target=health_times, args=(url, stop_event, times))
    watcher.start()
    try:
        kept = slow_clients(port, 100, head, trickle, seconds=40)
    finally:
        stop_event.set()
        watcher.join()
    closed = [seconds for seconds in kept if seconds is not None]
    assert len(closed) == len(kept), f"{kept.count(None)} of 100 slow connections still open after 40 s"
    # Cut off once the promised time is over (checked once a second, on a loaded machine), never before.
    assert PROMISED_SECONDS - 1 < min(closed) and max(closed) < PROMISED_SECONDS + 4, sorted(closed)
    # A stalled event loop would hold /health for the slow clients' 10 s; a busy machine, for a second or two.
    assert times and max(times) < 5, f"/health took up to {max(times):.1f} s"
    assert "Traceback" not in log.read_text()


def test_slow_clients_beyond_the_descriptor_limit_neither_block_health_nor_flood_the_log(settings, tmp_path):
    log, port = tmp_path / "server.log", free_port()
    process = start_server(settings, port, log, open_files=128)
    url = f"http://127.0.0.1:{port}"
    stop_event = threading.Event()
    times: list[float] = []  # /health response seconds, filled by the watcher
    watcher = threading.Thread(target=health_times, args=(url, stop_event, times))
    try:
        watcher.start()
        kept = slow_clients(port, 300, BODY_HEAD, b"a", seconds=30)
    finally:
        stop_event.set()
        watcher.join()
        stop(process)
    closed = [seconds for seconds in kept if seconds is not None]
    assert len(closed) == len(kept) and max(closed) < PROMISED_SECONDS + 4
    # Every /health answered within the watcher's 10-s timeout (a timeout counts as infinite); the
    # median 1.5 s: 3x the 0.5 s once asserted, for a 2-core machine running other jobs' tests too.
    assert times and statistics.median(times) < 1.5 and max(times) < 10, sorted(times)[-5:]
    text = log.read_text()
    assert "Traceback" not in text and len(text) < 20_000, text[-2000:]


def raw_bytes(settings) -> dict[str, bytes]:
    return {name: (settings.raw_dir / name).read_bytes() for name in (X_FILE, Y_FILE)}


def ingest(url: str, settings, text: str, key: str | None = None):
    headers = {**auth(settings, "alice", "admin"), **({"Idempotency-Key": key} if key else {})}
    return httpx.post(f"{url}/ingest", files={"file": ("new.csv", text, "text/csv")}, headers=headers, timeout=60)


def test_a_row_with_more_fields_than_the_header_is_refused_with_its_line(settings, server):
    url, _ = server
    before = raw_bytes(settings)
    response = ingest(url, settings, "designation,description,prdtypecode\nPiscine, Intex 3m,Avec pompe,2583\n")
    assert response.status_code == 422, response.text
    assert "line 2" in response.json()["detail"]["message"] and "saw 4" in response.json()["detail"]["message"]
    assert raw_bytes(settings) == before


UPLOAD = "designation,description,prdtypecode\nRobot piscine Dolphin E10,,2583\nCarte Pokémon Dracaufeu,,1160\n"


def test_a_retried_ingest_with_its_key_is_added_once(settings, server):
    url, _ = server
    first = ingest(url, settings, UPLOAD, key="retry-1")
    assert first.status_code == 200 and first.json()["replayed"] is False, first.text
    after = raw_bytes(settings)
    retry = ingest(url, settings, UPLOAD, key="retry-1")
    assert retry.status_code == 200 and retry.json() == {**first.json(), "replayed": True}
    assert raw_bytes(settings) == after
    other = ingest(url, settings, UPLOAD.replace("E10", "E20"), key="retry-1")
    assert other.status_code == 422 and "already used for another upload" in other.json()["detail"]["message"]
    assert ingest(url, settings, UPLOAD, key="../etc").status_code == 422  # keys are plain tokens
    assert raw_bytes(settings) == after


CRASH_AFTER_COMMIT = """
import os, sys
import mlops_rakuten.ops.ingest as sequence
from mlops_rakuten.serve.settings import load_settings

data = sys.stdin.buffer.read()
def die(*args, **kwargs):
    os._exit(17)  # rows committed, `dvc add` not run, no answer sent: a kill -9 at the worst moment
sequence._record = die
settings = load_settings()
sequence.ingest(settings.project_dir, settings.state_dir, data, "new.csv", "crash-1")
"""


def test_an_ingest_cut_off_before_its_answer_is_not_added_again_on_retry(settings, tmp_path):
    before = raw_bytes(settings)
    upload = UPLOAD.replace("E10", "S300")
    crashed = run(
        [sys.executable, "-c", CRASH_AFTER_COMMIT],
        settings.project_dir,
        check=False,
        env=server_env(settings),
        input=upload,
    )
    assert crashed.returncode == 17, crashed.stderr
    assert raw_bytes(settings) != before  # the rows are in; the client never heard so
    added = raw_bytes(settings)
    port = free_port()
    process = start_server(settings, port, tmp_path / "server.log")  # finishes the cut-off ingest
    try:
        retry = ingest(f"http://127.0.0.1:{port}", settings, upload, key="crash-1")
    finally:
        stop(process)
    assert retry.status_code == 200 and retry.json()["replayed"] is True, retry.text
    assert raw_bytes(settings) == added
    x_lines = added[X_FILE].decode().splitlines()
    assert sum("Robot piscine Dolphin S300" in line for line in x_lines) == 1
    answer = retry.json()
    assert answer["accepted"] == 2 and answer["last_index"] - answer["first_index"] == 1 and answer["data_md5"]
