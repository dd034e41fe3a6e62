"""Clients that never read their answers, against a real `rakuten serve` with few file descriptors.

60 connections, each with a 1 KiB receive buffer, pipeline 400 x GET /openapi.json and read nothing
(devtools/slow_readers.py). Under a limit of 100 descriptors (`prlimit --nofile=100:100`) they once
held every connection the server had room for, for good, and no /health probe got an answer.
"""

from __future__ import annotations

import statistics
import time

import httpx
import pytest

from mlops_rakuten.devtools.slow_readers import attack, open_non_reader

from serve_support import build_project, free_port, make_settings, start_server, stop

pytestmark = pytest.mark.server
# docs/serving-limits.md: an answer the client does not take for 10 s is dropped, with its connection.
PROMISED_SECONDS = 10
CLOSED_WITHIN = 15  # the acceptance bound: the promise plus room for the 0.5-s checks on a loaded machine


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    root = tmp_path_factory.mktemp("slow-readers")
    return make_settings(build_project(root / "project", trained=False), root / "secrets")


def test_clients_that_never_read_are_closed_and_health_keeps_answering(settings, tmp_path):
    log, port = tmp_path / "server.log", free_port()
    process = start_server(settings, port, log, open_files=100)
    try:
        result = attack(f"http://127.0.0.1:{port}", process.pid, clients=60, pipelined=400, seconds=25)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        stop(process)
    print(result.summary())
    open_after = [i for i, seconds in enumerate(result.closed_after) if seconds is None]
    assert not open_after, f"{len(open_after)} of 60 non-reading connections still open after 25 s: {result.held}"
    assert max(s for s in result.closed_after if s is not None) < CLOSED_WITHIN, result.closed_after
    # Every probe answered (each has 5 s); the acceptance's 1 s is what the benchmark measures
    # (docs/serving-limits.md): a shared 2-core machine running other tests can stall any probe.
    answered = [seconds for seconds in result.health if seconds is not None]
    assert answered and len(answered) == len(result.health), result.health
    assert statistics.median(answered) < 1, result.health
    text = log.read_text()
    assert "Traceback" not in text, text[-2000:]
    assert "not reading their answers" in text  # the once-a-minute line
    closed = {
        line.split('"')[1]: float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("rakuten_connections_closed_total{")
    }
    assert closed["not_reading"] + closed["crowded_out"] >= 60, closed


def test_a_client_reading_slowly_keeps_its_connection(settings, tmp_path):
    """A 1 KiB receive buffer read four times a second: about 2 KiB/s, far below what the pipelined answers
    need but above the 1 KiB/s minimum. Its answer waits longer than 10 s for room, and is never cut off."""
    port = free_port()
    process = start_server(settings, port, tmp_path / "server.log")
    try:
        sock = open_non_reader(port, pipelined=400)
        received, start = 0, time.monotonic()
        try:
            while time.monotonic() - start < 2.5 * PROMISED_SECONDS:
                time.sleep(0.25)
                chunk = sock.recv(2048)
                assert chunk, f"closed by the server after {time.monotonic() - start:.1f} s"
                received += len(chunk)
        except BlockingIOError:
            pytest.fail(f"the server sent nothing for 0.25 s after {received} bytes")
        finally:
            sock.close()
    finally:
        stop(process)
    assert received > 2.5 * PROMISED_SECONDS * 1024  # more than the minimum rate, all along
