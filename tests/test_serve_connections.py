"""The HTTP protocol of `rakuten serve` (serve/connections.py) on raw sockets: head size, pipelining, keep-alive.

The deadlines themselves are in test_serve_attacks.py (slow heads and bodies, the descriptor limit)
and test_serve_slow_readers.py (clients that never read).
"""

from __future__ import annotations

import socket
import time

import pytest

from serve_support import build_project, free_port, make_settings, start_server, stop

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def port(tmp_path_factory):
    root = tmp_path_factory.mktemp("connections")
    settings = make_settings(build_project(root / "project", trained=False), root / "secrets")
    port = free_port()
    process = start_server(settings, port, root / "server.log")
    yield port
    stop(process)


def answers(sock: socket.socket, count: int, seconds: float = 10) -> list[bytes]:
    """The next ``count`` answers' status lines and bodies (by Content-Length), in the order they came."""
    data, found = b"", list[bytes]()
    deadline = time.monotonic() + seconds
    while len(found) < count and time.monotonic() < deadline:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
            )
            if len(rest) >= length:
                found.append(head.split(b"\r\n")[0] + b" " + rest[:length])
                data = rest[length:]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return found


def test_a_head_larger_than_16_kib_is_refused_and_a_large_one_below_is_answered(port):
    for lines, expected in ((12, b"HTTP/1.1 200 OK"), (40, b"HTTP/1.1 400 Bad Request")):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            try:
                for _ in range(lines):  # one read each: the limit counts what arrives after the first
                    sock.sendall(b"X-Filler: " + b"a" * 1000 + b"\r\n")
                    time.sleep(0.01)
                sock.sendall(b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused mid-head: the answer is waiting
            status = sock.recv(4096).split(b"\r\n")[0]
            assert status == expected, (lines, status)


def test_pipelined_requests_are_answered_in_order_one_each(port):
    requests = [b"/health", b"/openapi.json", b"/no-such-route", b"/health"]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"".join(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n" for path in requests))
        got = answers(sock, len(requests))
    assert [answer.split(b" ", 2)[1] for answer in got] == [b"200", b"200", b"404", b"200"]
    assert b'"openapi"' in got[1] and b'"status"' in got[0] and b'"status"' in got[3]


def test_a_request_refused_from_its_headers_leaves_the_connection_usable(port):
    body = b'{"designation": "chaise"}'
    refused = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(refused)  # no token: 401 before the body is read
        assert answers(sock, 1)[0].startswith(b"HTTP/1.1 401")
        sock.sendall(body + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answers(sock, 1)[0].startswith(b"HTTP/1.1 200")
