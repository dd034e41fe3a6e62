"""Benchmark the API under abuse (`make bench-serve-abuse`): memory, latency and metrics while it is attacked.

Against a real `rakuten serve` on loopback (the project's model, a throw-away user):

1. peak RSS of the server while 1 GiB bodies without a token are sent to /predict, one after
   the other (the server must answer from the headers and never read them);
2. p50 of normal /predict calls, alone and while other clients send descriptions of
   20,000 '<' characters (quadratic tag stripping once made them cost 0.25 s each);
3. /metrics line count before and after requests with junk HTTP methods (each once became
   a new label value);
4. slow senders: connections to /token announcing a 4,000-byte body and sending one byte a
   second (they once stayed open as long as bytes came): how many the server holds at once, how
   long it keeps each, and /health's latency meanwhile. ``--open-files 128`` runs the server
   under that descriptor limit (`ulimit -n`), fewer than the slow connections;
5. slow readers (devtools/slow_readers.py): 60 connections with a 1 KiB receive buffer pipelining
   400 x GET /openapi.json and never reading, against a server of its own under
   ``--reader-open-files`` (100) descriptors: the sockets the server holds over time, when each
   client is closed, and /health meanwhile. Written to ``--out`` (docs/bench/serve_abuse.json);
   ``--table FILE`` prints that file as the Markdown docs/serving-limits.md shows.

``--only slow-readers`` runs the fifth step alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

from mlops_rakuten.core.atomic import atomic_open
from mlops_rakuten.core.errors import InputError, exit_on_input_error
from mlops_rakuten.devtools import slow_readers
from mlops_rakuten.devtools.serve_bench import serving
from mlops_rakuten.serve.settings import MODEL_PATH

CHUNK = b"x" * 2**20


def send_huge_body(port: int, size: int) -> tuple[str, float, int]:
    """POST ``size`` bytes to /predict without a token; the status line, seconds, and bytes the server took."""
    start, sent = time.monotonic(), 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            (
                f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {size}\r\n\r\n"
            ).encode()
        )
        try:
            while sent < size:
                sent += sock.send(CHUNK[: min(len(CHUNK), size - sent)])
        except OSError:  # the server answered and closed: the rest is never read
            pass
        try:
            status = sock.recv(4096).split(b"\r\n", 1)[0].decode()
        except OSError:
            status = "(connection reset)"
    return status, time.monotonic() - start, sent


def huge_bodies(base: str, server: psutil.Process, count: int, size: int) -> None:
    port = int(base.rsplit(":", 1)[1])
    before = server.memory_info().rss
    peak, done = [before], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak.append(server.memory_info().rss)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    cpu = time.process_time()
    for i in range(count):
        status, seconds, sent = send_huge_body(port, size)
        print(
            f"  body {i + 1}: {size / 2**30:.0f} GiB announced, {sent / 2**20:.1f} MiB accepted by the socket "
            f"before the answer, {seconds:.2f} s: {status}"
        )
    done.set()
    sampler.join()
    print(
        f"server RSS: {before / 2**20:.0f} MiB before, peak {max(peak) / 2**20:.0f} MiB during {count} "
        f"x {size / 2**30:.0f} GiB bodies without a token (client CPU {time.process_time() - cpu:.2f} s)"
    )


def _latencies(url: str, headers: dict, body: dict, count: int) -> list[float]:
    times = []
    with httpx.Client(timeout=60) as client:
        for _ in range(count):
            start = time.perf_counter()
            response = client.post(url, json=body, headers=headers)
            times.append(time.perf_counter() - start)
            response.raise_for_status()
    return times


def adversarial_load(base: str, token: str, server: psutil.Process, attackers: int, count: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    normal = {"designation": "Piscine tubulaire Intex 3,66 m", "description": "<p>Livrée avec pompe</p>"}
    attack = {"designation": "Livre", "description": "<" * 20_000}
    alone = _latencies(f"{base}/predict", headers, normal, count)
    stop, sent = threading.Event(), [0]

    def attacker() -> None:
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                client.post(f"{base}/predict", json=attack, headers=headers)
                sent[0] += 1

    threads = [threading.Thread(target=attacker) for _ in range(attackers)]
    cpu = sum(server.cpu_times()[:2])
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    attacked = _latencies(f"{base}/predict", headers, normal, count)
    stop.set()
    for thread in threads:
        thread.join()
    server_cpu = sum(server.cpu_times()[:2]) - cpu
    print(
        f"normal /predict p50: {np.median(alone) * 1000:.1f} ms alone, {np.median(attacked) * 1000:.1f} ms while "
        f"{attackers} clients sent descriptions of 20,000 '<' ({sent[0]} of them; server CPU {server_cpu:.2f} s, "
        f"{count} normal calls each)"
    )


def junk_methods(base: str, count: int) -> None:
    with httpx.Client(timeout=10) as client:
        client.get(f"{base}/metrics")
        before = len(client.get(f"{base}/metrics").text.splitlines())
        statuses = {client.request(f"M{i:04d}X", f"{base}/health").status_code for i in range(count)}
        after = len(client.get(f"{base}/metrics").text.splitlines())
    print(
        f"/metrics: {before} lines before, {after} after {count} requests with junk methods "
        f"(answered {sorted(statuses)})"
    )


SLOW_HEAD = (
    b"POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: 4000\r\n\r\n"
)


def slow_senders(base: str, count: int, seconds: int) -> None:
    port = int(base.rsplit(":", 1)[1])
    health, stop = [], threading.Event()

    def time_health() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                start = time.perf_counter()
                ok = client.get(f"{base}/health").status_code == 200
                health.append(time.perf_counter() - start if ok else float("inf"))
                time.sleep(0.2)

    sockets: list = []
    closed: dict = {}
    answers: dict = {}
    open_counts: list = []
    start = time.monotonic()
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(SLOW_HEAD)
        sock.setblocking(False)
        sockets.append(sock)
    timer = threading.Thread(target=time_health)
    timer.start()
    while time.monotonic() - start < seconds and len(closed) < count:
        time.sleep(1)
        for i, sock in enumerate(sockets):
            if i in closed:
                continue
            try:
                data = sock.recv(4096)
                closed[i] = time.monotonic() - start
                status = data.split(b"\r\n", 1)[0].decode(errors="replace") or "(closed without an answer)"
                answers[status] = answers.get(status, 0) + 1
            except BlockingIOError:
                try:
                    sock.send(b"a")
                except OSError:
                    closed[i] = time.monotonic() - start
            except OSError:
                closed[i] = time.monotonic() - start
        open_counts.append(count - len(closed))
    stop.set()
    timer.join()
    for sock in sockets:
        sock.close()
    kept = sorted(closed.values())
    print(
        f"slow senders: {count} connections to /token, Content-Length 4000, one byte a second: "
        f"{len(kept)} closed by the server within {seconds} s, after {kept[0]:.0f} to {kept[-1]:.0f} s "
        f"(median {np.median(kept):.0f} s), at most {max(open_counts, default=0)} still open at a 1-s check; "
        f"answers {answers}"
        if kept
        else f"slow senders: none of {count} closed within {seconds} s"
    )
    print(
        f"/health meanwhile: {len(health)} calls, p50 {np.median(health) * 1000:.1f} ms, "
        f"max {max(health) * 1000:.0f} ms"
    )


def _without_project(argv: list[str]) -> list[str]:
    """The arguments but ``--project``'s: a path of this machine, meaningless in the committed record."""
    kept, skip = [], False
    for arg in argv:
        if skip or arg.startswith("--project="):
            skip = False
        elif arg == "--project":
            skip = True
        else:
            kept.append(arg)
    return kept


def slow_reader_case(root: Path, clients: int, open_files: int, out: Path, argv: list[str]) -> None:
    with serving(root, open_files=open_files) as (base, _, process):
        result = slow_readers.attack(base, process.pid, clients=clients, pipelined=400, seconds=30)
    print(result.summary())
    print("sockets the server held (seconds, count): " + ", ".join(f"{s:.0f}:{n}" for s, n in result.held[::2]))
    record = {
        **result.as_dict(),
        "open_files": open_files,
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "command": " ".join(["python -m mlops_rakuten.devtools.serve_bench_abuse", *_without_project(argv)]),
        "cores": os.cpu_count(),
        "load": round(os.getloadavg()[0], 1),
        "python": platform.python_version(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out) as handle:
        json.dump(record, handle, indent=1)
        handle.write("\n")
    print(f"wrote {out}")


@exit_on_input_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="project with a trained model (default .)")
    parser.add_argument("--bodies", type=int, default=3, help="1 GiB bodies to send (default 3)")
    parser.add_argument("--attackers", type=int, default=4, help="clients sending adversarial text (default 4)")
    parser.add_argument("--requests", type=int, default=200, help="normal /predict calls timed (default 200)")
    parser.add_argument("--junk", type=int, default=1000, help="junk-method requests (default 1000)")
    parser.add_argument("--slow", type=int, default=300, help="slow-sending connections (default 300)")
    parser.add_argument("--slow-seconds", type=int, default=40, help="how long they go on at most (default 40)")
    parser.add_argument("--open-files", type=int, help="the server's file-descriptor limit (`ulimit -n`)")
    parser.add_argument("--readers", type=int, default=60, help="non-reading connections (default 60)")
    parser.add_argument("--reader-open-files", type=int, default=100, help="their server's limit (default 100)")
    parser.add_argument("--only", choices=["slow-readers"], help="run this step alone")
    parser.add_argument("--out", type=Path, default=Path("docs/bench/serve_abuse.json"), help="the slow readers' JSON")
    parser.add_argument("--table", type=Path, help="print this JSON as Markdown tables, and nothing else")
    args = parser.parse_args(argv)
    if args.table:
        try:
            print(slow_readers.table(json.loads(args.table.read_text())))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{args.table}: not a slow-readers result of this benchmark ({exc})") from None
        return
    root = args.project.resolve()
    if not (root / MODEL_PATH).is_file():
        raise InputError(f"{root / MODEL_PATH}: no model to serve; run `make run` first")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    if not args.only:
        with serving(root, open_files=args.open_files) as (base, token, process):
            server = psutil.Process(process.pid)
            huge_bodies(base, server, args.bodies, 2**30)
            adversarial_load(base, token, server, args.attackers, args.requests)
            junk_methods(base, args.junk)
            slow_senders(base, args.slow, args.slow_seconds)
    slow_reader_case(root, args.readers, args.reader_open_files, args.out, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
