"""POST /predict answers the same, byte for byte, with the fast path (serve/fast_predict.py) and through FastAPI.

Two apps on the same trained project, one built with the fast path and one without, each served by
uvicorn with the server's own protocol on a real socket, get the same requests: good ones, and every
way the route refuses one (bad JSON, schema, no text, tokens, sizes, a body cut off by the size cap
mid-stream, wrong method and path). Status, headers (but the date) and body bytes must be equal, and
so must the request counts /metrics shows for /predict and the rows the prediction log wrote.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from mlops_rakuten.serve.app import create_app
from mlops_rakuten.serve.connections import DeadlineProtocol
from mlops_rakuten.serve.settings import MAX_PREDICT_PRODUCTS, PREDICT_MAX_BYTES

from serve_support import auth, free_port, make_settings, shared_trained_project, wait_until

PRODUCT = {"designation": "Piscine hors sol tubulaire Intex", "description": "<p>Avec pompe de filtration</p>"}
ACCENTS = {
    "designation": "Peluche éléphant « Doudou » 30 cm",
    "description": "Idéal pour bébé – lavable à 30°",
    "top_k": 27,
}


@contextlib.contextmanager
def served(app) -> Iterator[str]:
    """``app`` behind uvicorn and the server's DeadlineProtocol on a loopback port, in a thread."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, http=DeadlineProtocol, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, "uvicorn to start", timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The fast app's URL, the plain app's URL, their settings, and tokens for a user and an admin."""
    root = tmp_path_factory.mktemp("fast-predict")
    settings = make_settings(shared_trained_project(tmp_path_factory), root / "secrets")
    fast = dataclasses.replace(settings, state_dir=root / "fast-state")
    plain = dataclasses.replace(settings, state_dir=root / "plain-state")
    with served(create_app(fast)) as fast_url, served(create_app(plain, fast_predict=False)) as plain_url:
        yield fast_url, plain_url, fast, plain, auth(settings, "bob", "user"), auth(settings, "alice", "admin")


def _chunks(total: int) -> Iterator[bytes]:
    """A body sent without Content-Length, larger than /predict's cap."""
    piece = b'{"designation": "' + b"x" * 2**16
    sent = 0
    while sent < total:
        yield piece
        sent += len(piece)


def cases(user: dict, admin: dict, inactive: dict) -> list[tuple[str, str, dict]]:
    """(method, path, httpx keyword arguments) for every request compared."""
    json_headers = {**user, "Content-Type": "application/json"}
    many = [PRODUCT, ACCENTS, {"designation": "Lot de 4 pneus 205/55 R16", "top_k": 1}]
    return [
        ("POST", "/predict", {"json": PRODUCT, "headers": user}),
        ("POST", "/predict", {"json": {**PRODUCT, "top_k": 5}, "headers": user}),
        ("POST", "/predict", {"json": ACCENTS, "headers": user}),
        ("POST", "/predict", {"json": {"designation": "Robot aspirateur"}, "headers": user}),
        ("POST", "/predict", {"json": {"designation": "Robot", "description": None}, "headers": user}),
        ("POST", "/predict", {"json": many, "headers": user}),
        ("POST", "/predict", {"json": [PRODUCT], "headers": user}),
        ("POST", "/predict", {"json": [PRODUCT] * MAX_PREDICT_PRODUCTS, "headers": user}),
        ("POST", "/predict", {"json": PRODUCT, "headers": admin}),
        ("POST", "/predict", {"content": json.dumps(PRODUCT), "headers": {**user, "Content-Type": "text/plain"}}),
        # Refused: the body.
        ("POST", "/predict", {"content": b'{"designation": ', "headers": json_headers}),
        ("POST", "/predict", {"content": b"", "headers": json_headers}),
        ("POST", "/predict", {"content": b"[" * 5000 + b"]" * 5000, "headers": json_headers}),
        ("POST", "/predict", {"json": [], "headers": user}),
        ("POST", "/predict", {"json": [PRODUCT] * (MAX_PREDICT_PRODUCTS + 1), "headers": user}),
        ("POST", "/predict", {"json": {**PRODUCT, "descripton": "typo"}, "headers": user}),
        ("POST", "/predict", {"json": {"designation": "   "}, "headers": user}),
        ("POST", "/predict", {"json": {"designation": ""}, "headers": user}),
        ("POST", "/predict", {"json": {**PRODUCT, "top_k": 0}, "headers": user}),
        ("POST", "/predict", {"json": {**PRODUCT, "top_k": 28}, "headers": user}),
        ("POST", "/predict", {"json": {**PRODUCT, "top_k": "3"}, "headers": user}),
        ("POST", "/predict", {"json": "Piscine", "headers": user}),
        ("POST", "/predict", {"json": {"designation": "<b><i></i></b>"}, "headers": user}),
        ("POST", "/predict", {"json": [PRODUCT, {"designation": "<br/>"}, {"top_k": 2}], "headers": user}),
        ("POST", "/predict", {"json": {"designation": "x" * 100_000}, "headers": user}),
        # Refused: the size, declared and streamed.
        ("POST", "/predict", {"content": b"x" * (PREDICT_MAX_BYTES + 1), "headers": json_headers}),
        ("POST", "/predict", {"content": _chunks(PREDICT_MAX_BYTES + 2**16), "headers": json_headers}),
        # Refused: the token.
        ("POST", "/predict", {"json": PRODUCT}),
        ("POST", "/predict", {"json": PRODUCT, "headers": {"Authorization": "Basic Ym9iOmJvYg=="}}),
        ("POST", "/predict", {"json": PRODUCT, "headers": {"Authorization": "Bearer not-a-token"}}),
        ("POST", "/predict", {"json": PRODUCT, "headers": inactive}),
        # Not this route.
        ("GET", "/predict", {"headers": user}),
        ("PUT", "/predict", {"json": PRODUCT, "headers": user}),
        ("POST", "/predict/", {"json": PRODUCT, "headers": user}),
        ("POST", "/Predict", {"json": PRODUCT, "headers": user}),
        ("POST", "/predict?top_k=9", {"json": PRODUCT, "headers": user}),
    ]


def _answer(client: httpx.Client, method: str, path: str, kwargs: dict) -> tuple[int, list, bytes]:
    if "content" in kwargs and not isinstance(kwargs["content"], (bytes, str)):
        kwargs = {**kwargs, "content": _chunks(PREDICT_MAX_BYTES + 2**16)}  # a generator is used up once
    response = client.request(method, path, **kwargs)
    base = str(client.base_url).rstrip("/")  # a redirect names the server it came from
    headers = [(key, value.replace(base, "BASE")) for key, value in response.headers.multi_items() if key != "date"]
    return response.status_code, headers, response.content


def _products(status: int, body: bytes) -> int:
    """Products answered (and so logged) by an answer."""
    if status != 200:
        return 0
    answer = json.loads(body)
    return len(answer) if isinstance(answer, list) else 1


def _log_rows(state_dir: Path) -> list[dict]:
    rows = []
    for path in sorted((state_dir / "predictions").glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line]
    return sorted(({k: v for k, v in row.items() if k != "time"} for row in rows), key=json.dumps)


def _predict_counts(client: httpx.Client) -> list[str]:
    lines = client.get("/metrics").text.splitlines()
    return sorted(line for line in lines if line.startswith("rakuten_http_requests_total") and "/predict" in line)


def test_the_fast_path_answers_as_fastapi_does(pair):
    fast_url, plain_url, fast, plain, user, admin = pair
    statuses, logged = set(), 0
    with httpx.Client(base_url=fast_url, timeout=30) as a, httpx.Client(base_url=plain_url, timeout=30) as b:
        for method, path, kwargs in cases(user, admin, auth(fast, "carol", "user")):
            fast_answer, plain_answer = _answer(a, method, path, kwargs), _answer(b, method, path, kwargs)
            assert fast_answer == plain_answer, f"{method} {path} {str(kwargs)[:200]}"
            statuses.add(fast_answer[0])
            logged += _products(fast_answer[0], fast_answer[2])
        assert {200, 307, 401, 404, 405, 413, 422} <= statuses  # the comparison covered answers and refusals
        assert _predict_counts(a) == _predict_counts(b)
    for state in (fast.state_dir, plain.state_dir):
        wait_until(lambda s=state: len(_log_rows(s)) == logged, f"{logged} rows in {state}'s log", timeout=30)
    assert _log_rows(fast.state_dir) == _log_rows(plain.state_dir)
