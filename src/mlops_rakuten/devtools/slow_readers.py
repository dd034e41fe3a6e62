"""Clients that never read their answers: the attack of `make bench-serve-abuse` and tests/test_serve_slow_readers.py.

Each connection shrinks its receive buffer to 1 KiB, pipelines many ``GET /openapi.json`` (about 19 KB
each) in one go and never reads. The server's answers then fill the kernel's buffers and its own
write buffer; a server without a deadline on sending holds every such connection, and the file
descriptor under it, forever. Meanwhile /health is timed with a fresh connection each second, as a
load balancer's probe would.
"""

from __future__ import annotations

import os
import select
import socket
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field

import httpx

REQUEST = b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@dataclass
class SlowReaders:
    clients: int
    pipelined: int
    seconds: float
    closed_after: list[float | None] = field(default_factory=list)  # per client, seconds; None: still open
    health: list[float | None] = field(default_factory=list)  # per probe, seconds; None: failed or over its timeout
    held: list[tuple[float, int]] = field(default_factory=list)  # (seconds, sockets the server held)

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        closed = [s for s in self.closed_after if s is not None]
        answered = [s for s in self.health if s is not None]
        return (
            f"slow readers: {self.clients} connections pipelining {self.pipelined} x GET /openapi.json, never "
            f"reading: {len(closed)} closed by the server within {self.seconds:.0f} s"
            + (f" (after {min(closed):.1f} to {max(closed):.1f} s)" if closed else "")
            + f"; /health: {len(answered)} of {len(self.health)} answered"
            + (
                f", p50 {statistics.median(answered) * 1000:.0f} ms, max {max(answered) * 1000:.0f} ms"
                if answered
                else ""
            )
        )


def open_non_reader(port: int, pipelined: int) -> socket.socket:
    """A connection with a 1 KiB receive buffer that has sent ``pipelined`` requests and will read nothing."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # before connect: it sets the window offered
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    data = REQUEST * pipelined
    deadline = time.monotonic() + 5
    while data and time.monotonic() < deadline:  # the server stops reading once its answers back up
        try:
            data = data[sock.send(data) :]
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            break
    return sock


def is_closed(sock: socket.socket) -> bool:
    """Whether the server reset or closed the connection, found without reading what it sent."""
    poller = select.poll()
    poller.register(sock, select.POLLERR | select.POLLHUP | select.POLLRDHUP)
    return bool(poller.poll(0))


def server_sockets(pid: int) -> int:
    """Sockets the process holds open (its file descriptors that are sockets)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            continue  # closed meanwhile
    return count


def _probe_health(base: str, stop: threading.Event, times: list[float | None], timeout: float) -> None:
    while not stop.is_set():
        start = time.monotonic()
        try:
            ok = httpx.get(f"{base}/health", timeout=timeout).status_code == 200
        except httpx.HTTPError:
            ok = False
        times.append(time.monotonic() - start if ok else None)
        stop.wait(max(0.0, 1.0 - (time.monotonic() - start)))


def attack(
    base: str, server_pid: int, clients: int = 60, pipelined: int = 400, seconds: float = 30, probe_timeout: float = 5
) -> SlowReaders:
    """``clients`` non-reading connections; how long the server kept each, and /health meanwhile."""
    port = int(base.rsplit(":", 1)[1])
    result = SlowReaders(clients, pipelined, seconds)
    stop = threading.Event()
    prober = threading.Thread(target=_probe_health, args=(base, stop, result.health, probe_timeout))
    start = time.monotonic()
    sockets: list[tuple[socket.socket, float]] = []  # with when each connected
    closed: list[float | None] = [None] * clients
    prober.start()
    try:
        for _ in range(clients):
            sockets.append((open_non_reader(port, pipelined), time.monotonic()))
        while time.monotonic() - start < seconds and None in closed:
            for i, (sock, connected) in enumerate(sockets):
                if closed[i] is None and is_closed(sock):
                    closed[i] = time.monotonic() - connected
            result.held.append((round(time.monotonic() - start, 1), server_sockets(server_pid)))
            time.sleep(0.5)
        result.held.append((round(time.monotonic() - start, 1), server_sockets(server_pid)))
    finally:
        stop.set()
        prober.join()
        for sock, _ in sockets:
            sock.close()
    result.closed_after = [None if c is None else round(c, 2) for c in closed]
    result.health = [None if h is None else round(h, 4) for h in result.health]
    return result


def table(record: dict) -> str:
    """The Markdown tables docs/serving-limits.md shows, from the JSON the benchmark wrote."""
    closed = [s for s in record["closed_after"] if s is not None]
    health = [s for s in record["health"] if s is not None]
    lines = [
        f"{record['clients']} clients pipelining {record['pipelined']} x `GET /openapi.json` with a 1 KiB receive "
        f"buffer, never reading; server under `prlimit --nofile={record['open_files']}:{record['open_files']}`; "
        f"{record['cores']} cores, load average {record['load']:.1f}; {record['date']}; `{record['command']}`",
        "",
        "| | |",
        "|---|---|",
        f"| clients closed by the server | {len(closed)} of {record['clients']} |",
        "| closed after (s): min, median, max | "
        + (f"{min(closed):.1f}, {statistics.median(closed):.1f}, {max(closed):.1f} |" if closed else "— |"),
        f"| `/health` probes answered | {len(health)} of {len(record['health'])} |",
        "| `/health` (ms): p50, max | "
        + (f"{statistics.median(health) * 1000:.0f}, {max(health) * 1000:.0f} |" if health else "— |"),
        "",
        "| seconds since the attack began | " + " | ".join(str(s) for s, _ in _per_second(record["held"])) + " |",
        "|---" * (1 + len(_per_second(record["held"]))) + "|",
        "| sockets the server held (most in that second) | "
        + " | ".join(str(n) for _, n in _per_second(record["held"]))
        + " |",
    ]
    return "\n".join(lines)


def _per_second(held: list) -> list[tuple[int, int]]:
    most: dict[int, int] = {}
    for seconds, count in held:
        most[int(seconds)] = max(most.get(int(seconds), 0), count)
    return sorted(most.items())
