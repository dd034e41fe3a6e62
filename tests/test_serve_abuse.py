"""The API under attack: bodies bounded before they are read, logins rate-limited, cleaning linear, labels bounded.

Bodies and logins are tested against a real `rakuten serve` on loopback (raw sockets where
the point is what the server does before a body has arrived); the rest in process.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import socket
import statistics
import threading
import time
from typing import Annotated

import httpx
import psutil
import pytest
from fastapi import APIRouter, Depends

import mlops_rakuten.text as text_module
from mlops_rakuten.serve.auth import require_admin
from mlops_rakuten.serve.guard import body_limit, route_rules
from mlops_rakuten.serve.settings import MAX_PREDICT_PRODUCTS, PREDICT_MAX_BYTES
from mlops_rakuten.serve.users import User
from mlops_rakuten.text import clean_text

from serve_support import PASSWORDS, auth, client, free_port, make_settings, shared_trained_project, start_server, stop

pytestmark = pytest.mark.server

GIB = 2**30


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    project = shared_trained_project(tmp_path_factory)
    return make_settings(project, tmp_path_factory.mktemp("abuse-secrets"))


@pytest.fixture(scope="module")
def server(settings, tmp_path_factory):
    port = free_port()
    process = start_server(settings, port, tmp_path_factory.mktemp("abuse-log") / "server.log")
    yield f"http://127.0.0.1:{port}", port, process
    stop(process)


@pytest.fixture(scope="module")
def api(settings):
    with client(settings) as test_client:
        yield test_client


def headers_only(port: int, request_head: str, timeout: float = 10.0) -> tuple[int, float]:
    """Send a request's head (and a few body bytes), never the rest: the status and how long it took."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request_head.encode() + b"\r\n" + b"x" * 1000)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)  # a server waiting for the whole body times out here
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1]), time.monotonic() - start


def head(method: str, path: str, length: int, content_type: str, token: str | None = None) -> str:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Content-Type: {content_type}",
        f"Content-Length: {length}",
    ]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return "\r\n".join(lines) + "\r\n"


@pytest.mark.parametrize(
    "path, content_type, expected",
    [
        ("/predict", "application/json", 401),
        ("/ingest", "multipart/form-data; boundary=x", 401),
        ("/token", "application/x-www-form-urlencoded", 413),
    ],
    ids=["predict-no-token", "ingest-no-token", "token-huge-form"],
)
def test_a_huge_body_is_refused_from_its_headers_without_being_read(server, path, content_type, expected):
    _, port, process = server
    rss = psutil.Process(process.pid).memory_info().rss
    for _ in range(3):
        status, seconds = headers_only(port, head("POST", path, GIB, content_type))
        assert status == expected and seconds < 5
    assert psutil.Process(process.pid).memory_info().rss - rss < 50 * 2**20


def test_a_user_token_opens_no_admin_upload_and_predict_bodies_are_capped(server, settings):
    _, port, _ = server
    user_token = auth(settings, "bob", "user")["Authorization"].split()[1]
    admin_token = auth(settings, "alice", "admin")["Authorization"].split()[1]
    assert headers_only(port, head("POST", "/ingest", GIB, "multipart/form-data; boundary=x", user_token))[0] == 403
    assert headers_only(port, head("POST", "/ingest", GIB, "multipart/form-data; boundary=x", admin_token))[0] == 413
    assert headers_only(port, head("POST", "/predict", PREDICT_MAX_BYTES + 1, "application/json", user_token))[0] == 413


def test_a_streamed_body_is_cut_off_at_the_limit(api, settings):
    chunks = (b" " * 2**20 for _ in range(PREDICT_MAX_BYTES // 2**20 + 2))  # no Content-Length: chunked
    response = api.post(
        "/predict", content=chunks, headers={**auth(settings, "bob", "user"), "Content-Type": "application/json"}
    )
    assert response.status_code == 413 and "larger than" in response.json()["detail"]


def test_concurrent_wrong_logins_neither_exhaust_memory_nor_delay_health(server):
    url, _, process = server
    server_process = psutil.Process(process.pid)
    start_rss = server_process.memory_info().rss
    peak, stop_sampling = [start_rss], threading.Event()

    def sample():
        while not stop_sampling.is_set():
            peak.append(server_process.memory_info().rss)
            time.sleep(0.02)

    def wrong_login(i: int) -> int:
        return httpx.post(
            f"{url}/token", data={"username": f"guess{i}", "password": "wrong-password"}, timeout=60
        ).status_code

    sampler = threading.Thread(target=sample)
    sampler.start()
    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        logins = [pool.submit(wrong_login, i) for i in range(64)]
        time.sleep(0.3)
        health_seconds = []
        for _ in range(5):
            started = time.monotonic()
            assert httpx.get(f"{url}/health", timeout=30).status_code == 200
            health_seconds.append(time.monotonic() - started)
        codes = [login.result() for login in logins]
    stop_sampling.set()
    sampler.join()
    assert set(codes) <= {401, 429} and codes.count(429) > 0  # beyond the hashing slots and queue: refused at once
    # It took 11 s before the bound. 5 s (was 1.5): under half of that, with room for a 2-core machine
    # shared with other jobs, where a /health call may wait seconds for a core.
    assert statistics.median(health_seconds) < 5, health_seconds
    assert max(peak) - start_rss < 600 * 2**20  # each argon2 check takes 64 MiB; 64 at once took 2.8 GB


def test_logins_are_rate_limited_per_address_and_per_name(settings):
    limited = dataclasses.replace(settings, login_per_minute=4, login_failures_per_minute=2)
    with client(limited) as api:
        for _ in range(2):
            assert api.post("/token", data={"username": "bob", "password": "wrong"}).status_code == 401
        refused = api.post("/token", data={"username": "bob", "password": PASSWORDS["bob"]})
        assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 30
        for _ in range(2):
            assert api.post("/token", data={"username": "alice", "password": PASSWORDS["alice"]}).status_code == 200
        # The address has now spent its 4 attempts (the refused one did not count), whatever the name.
        refused = api.post("/token", data={"username": "alice", "password": PASSWORDS["alice"]})
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1


def test_a_login_takes_as_long_for_an_unknown_name_as_for_a_wrong_password(api):
    def median_seconds(name: str) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            assert api.post("/token", data={"username": name, "password": "wrong-password"}).status_code == 401
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    median_seconds("bob")  # warm up
    known, unknown = median_seconds("bob"), median_seconds("nobody-by-that-name")
    # Skipping the hash for unknown names would make them ~100x faster; noise is far below 2x.
    assert 0.5 < unknown / known < 2.0, (known, unknown)


ADVERSARIAL = ["<" * 20_000, "<a" * 10_000, "<" * 19_999 + ">", "&lt;" * 5_000, ">" + "<" * 19_999, "<<>" * 6_667]


def best_seconds(text: str, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        clean_text(text)
        times.append(time.perf_counter() - started)
    return min(times)


@pytest.mark.parametrize("text", ADVERSARIAL, ids=["lt", "lt-a", "lt-then-gt", "escaped-lt", "gt-then-lt", "lt-lt-gt"])
def test_cleaning_takes_linear_time_on_adversarial_text(text):
    product = ("<p>Piscine tubulaire Intex 3,66 m &eacute;t&eacute; avec pompe&nbsp;: b&acirc;che incluse</p>" * 300)[
        : len(text)
    ]
    normal = best_seconds(product)
    # The quadratic tag pattern took 0.25 s on 20,000 '<', ~500x a normal product of that length.
    assert best_seconds(text) < 10 * normal + 0.002, (best_seconds(text), normal)
    assert best_seconds(text * 8, runs=3) < 24 * best_seconds(text) + 0.005  # 8x the length: ~8x the time, not 64x


def test_cleaning_keeps_its_results():
    assert clean_text("<p>Caf&eacute; <b>noir</b></p> a < b") == "Café noir a < b"
    assert clean_text("&lt;p&gt;Livre&lt;/p&gt; <<x> y") == "Livre y"
    assert clean_text("x <y") == "x <y"


def test_predict_cleans_each_product_once(api, settings, monkeypatch):
    calls: list[str] = []
    real = text_module.clean_text

    def counting(value: str) -> str:
        calls.append(value)
        return real(value)

    monkeypatch.setattr(text_module, "clean_text", counting)
    body = {"designation": "Piscine hors sol", "description": "<p>avec pompe</p>"}
    assert api.post("/predict", json=body, headers=auth(settings, "bob", "user")).status_code == 200
    assert sorted(calls) == sorted(body.values())


def test_predict_accepts_a_list_and_answers_each_product_in_order(api, settings):
    user = auth(settings, "bob", "user")
    products = [
        {"designation": "Carte Pokémon Pikachu holo", "top_k": 1},
        {"designation": "Piscine tubulaire Intex", "description": "<p>pompe</p>"},
        {"designation": "Perceuse visseuse sans fil", "top_k": 5},
    ]
    singles = [api.post("/predict", json=p, headers=user).json() for p in products]
    batch = api.post("/predict", json=products, headers=user)
    assert batch.status_code == 200 and batch.json() == singles
    assert [len(answer["predictions"]) for answer in batch.json()] == [1, 3, 5]


@pytest.mark.parametrize(
    "body, where, words",
    [
        ([], ["body"], "at least 1 item"),
        ([{"designation": "Livre"}] * (MAX_PREDICT_PRODUCTS + 1), ["body"], f"at most {MAX_PREDICT_PRODUCTS} items"),
        ([{"designation": "Livre"}, {"designation": "<p></p>"}], ["body", 1], "no text once HTML tags"),
        ([{"designation": "Livre"}, {"designation": "Livre", "top_k": 0}], ["body", 1, "top_k"], "greater than"),
    ],
    ids=["empty", "too-many", "no-text", "bad-top-k"],
)
def test_a_bad_product_in_a_list_is_422_naming_its_position(api, settings, body, where, words):
    response = api.post("/predict", json=body, headers=auth(settings, "bob", "user"))
    assert response.status_code == 422
    assert any(e["loc"] == where and words in e["msg"] for e in response.json()["detail"]), response.json()


def test_junk_methods_and_paths_do_not_grow_the_metrics(api):
    def junk(first: int) -> int:
        for i in range(first, first + 300):
            api.request(f"M{i:04d}X", "/health")
            api.get(f"/junk/{i}")
        return len(api.get("/metrics").text.splitlines())

    api.get("/metrics")  # the scrape's own series exists before counting
    # The first junk adds its "other" series once; 300 more of it add nothing (each used to add a series).
    assert junk(0) == junk(300)
    text = api.get("/metrics").text
    assert 'method="other",route="/health",status="405"' in text
    assert 'method="GET",route="other",status="404"' in text
    assert "M0001X" not in text and "/junk/1" not in text


def test_openapi_lists_every_status_a_route_can_return(api, settings):
    paths = api.get("/openapi.json").json()["paths"]
    expected = {
        ("/token", "post"): {"200", "401", "413", "429"},
        ("/predict", "post"): {"200", "400", "401", "403", "413", "422", "503"},
        ("/ingest", "post"): {"200", "401", "403", "409", "413", "422"},
        ("/train", "post"): {"202", "401", "403", "409"},
        ("/train/{job_id}", "get"): {"200", "401", "403", "404"},
        ("/info", "get"): {"200", "401", "403"},
    }
    for (path, method), codes in expected.items():
        documented = paths[path][method]["responses"]
        assert codes <= set(documented), (path, sorted(documented))
        assert all("application/json" in documented[code].get("content", {}) for code in codes - {"200", "202"})
    ingest_422 = paths["/ingest"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
    assert ingest_422["$ref"].endswith("/IngestRejected")
    refused = api.post(
        "/ingest", files={"file": ("x.csv", "title\nLivre\n", "text/csv")}, headers=auth(settings, "alice", "admin")
    )
    assert refused.status_code == 422 and set(refused.json()["detail"]) == {
        "message",
        "received",
        "accepted",
        "rejected",
        "rejects",
    }


def test_each_route_declares_its_role_and_body_limit_or_the_app_does_not_start():
    router = APIRouter()

    @router.post("/upload", openapi_extra=body_limit(100))
    def upload(_: Annotated[User, Depends(require_admin)]) -> dict:
        return {}

    (rule,) = route_rules(router.routes)
    assert rule.path.match("/upload") and rule.role == "admin" and rule.max_bytes == 100

    @router.post("/forgotten")
    def forgotten() -> dict:
        return {}

    with pytest.raises(RuntimeError, match=r"\['POST'\] /forgotten declares no body limit"):
        route_rules(router.routes)
