"""Serving against its limit: in-process throughput, then HTTP through nginx with 1 and 2 workers.

1. The physical limit: products/s of ``predict_top_k`` on one core, one product per call and 64 per
   call (the server micro-batches concurrent requests, so the batched rate is what it can approach).
2. Over HTTPS through Debian's nginx (deployments/nginx/nginx.conf) to `rakuten serve` with 1 and
   with 2 workers: req/s, p50 and p99 for single products and for batches of 64, at 8 and 32 clients,
   and the workers' CPU per request (which, unlike req/s, other processes on the machine barely change).
3. The ratio of HTTP single-product req/s to the in-process batched rate, per core.

Needs wrk and nginx; says so and stops without them. `make bench-serve` runs it after serve/bench.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pandas as pd
import sklearn
from threadpoolctl import threadpool_limits

from mlops_rakuten.core.errors import InputError, exit_on_input_error
from mlops_rakuten.core.predict import load_model, predict_top_k
from mlops_rakuten.devtools.serve_bench import _free_port, _tree_cpu_seconds, sample_texts, serving, wrk_load
from mlops_rakuten.serve.settings import MAX_PREDICT_PRODUCTS, MODEL_PATH

NGINX_TEMPLATE = "deployments/nginx/nginx.conf"


def in_process_rate(root: Path, texts: list[tuple[str, str]], batch: int, seconds: float = 3.0) -> tuple[float, float]:
    """Products per CPU second and per wall second of predict_top_k (top 3) in one thread, ``batch`` per call.

    The CPU rate is what one idle core does; on a shared machine the wall rate also counts the time
    other processes held the core.
    """
    model = load_model(root / MODEL_PATH)
    frames = []
    for start in range(0, len(texts), batch):
        rows = (texts * (1 + batch // len(texts)))[start : start + batch]
        frames.append(pd.DataFrame({"designation": [d for d, _ in rows], "description": [s for _, s in rows]}))
    done, i = 0, 0
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True), threadpool_limits(1):
        for frame in frames[:3]:
            predict_top_k(model, frame, 3)  # warm up
        began, began_cpu = time.perf_counter(), time.thread_time()
        while time.perf_counter() - began < seconds:
            frame = frames[i % len(frames)]
            predict_top_k(model, frame, 3)
            done += len(frame)
            i += 1
        return done / (time.thread_time() - began_cpu), done / (time.perf_counter() - began)


def render_nginx(template: Path, upstream: str, https_port: int, http_port: int, cert: Path, key: Path) -> str:
    """deployments/nginx/nginx.conf with its placeholders filled, as envsubst would: one server, both roles."""
    values = {
        "RAKUTEN_UPSTREAM": upstream,
        "RAKUTEN_WRITER_UPSTREAM": upstream,
        "RAKUTEN_HTTPS_PORT": str(https_port),
        "RAKUTEN_HTTP_PORT": str(http_port),
        "RAKUTEN_TLS_CERT": str(cert),
        "RAKUTEN_TLS_KEY": str(key),
    }
    return re.sub(r"\$\{(RAKUTEN_\w+)\}", lambda m: values[m.group(1)], template.read_text())


@contextlib.contextmanager
def nginx_in_front(root: Path, upstream: str, folder: Path) -> Iterator[str]:
    """Debian's nginx with the project's configuration on loopback, proxying to ``upstream``: its HTTPS URL."""
    cert, key = folder / "server.crt", folder / "server.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    https_port = _free_port()
    folder.chmod(0o755)  # started as root, nginx's workers run as nobody and buffer large bodies in here
    config = render_nginx(root / NGINX_TEMPLATE, upstream, https_port, _free_port(), cert, key)
    (folder / "nginx.conf").write_text(config)
    command = ["nginx", "-p", str(folder), "-c", "nginx.conf", "-e", "stderr", "-g", "daemon off;"]
    with open(folder / "nginx.out", "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        url = f"https://127.0.0.1:{https_port}"
        for _ in range(100):
            if process.poll() is not None:
                raise InputError(f"nginx exited: {(folder / 'nginx.out').read_text()[-1000:]}")
            with contextlib.suppress(OSError):
                import socket

                socket.create_connection(("127.0.0.1", https_port), timeout=1).close()
                break
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@exit_on_input_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="project with a trained model (default .)")
    parser.add_argument("--seconds", type=int, default=10, help="each HTTP load's duration (default 10)")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare (default 1,2)")
    parser.add_argument("--clients", default="8,32", help="concurrent connections to compare (default 8,32)")
    args = parser.parse_args(argv)
    root = args.project.resolve()
    if not (root / MODEL_PATH).is_file():
        raise InputError(f"{root / MODEL_PATH}: no model to serve; run `make run` first")
    missing = [tool for tool in ("wrk", "nginx", "openssl") if not shutil.which(tool)]
    if missing:
        print(f"bench-serve scaling: skipped, {' and '.join(missing)} not installed")
        return
    texts = sample_texts(root)
    (single, single_wall), (batched, batched_wall) = (
        in_process_rate(root, texts, size) for size in (1, MAX_PREDICT_PRODUCTS)
    )
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(
        f"in-process limit, 1 idle core (CPU time): {single:,.0f} products/s one at a time "
        f"({1000 / single:.2f} ms each), {batched:,.0f} products/s in batches of {MAX_PREDICT_PRODUCTS}; "
        f"by the wall clock here: {single_wall:,.0f} and {batched_wall:,.0f}"
    )
    bodies = {1: [json.dumps({"designation": d, "description": s, "top_k": 3}) for d, s in texts]}
    products = [{"designation": d, "description": s, "top_k": 3} for d, s in texts]
    bodies[MAX_PREDICT_PRODUCTS] = [
        json.dumps((products * 2)[k : k + MAX_PREDICT_PRODUCTS]) for k in range(0, len(products), 16)
    ]
    print(f"\nHTTPS through nginx, POST /predict, wrk {args.seconds} s per line:")
    print(
        "| workers | products/request | clients | req/s | products/s | p50 ms | p99 ms | errors | server CPU ms/req |"
    )
    print("|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    best: dict[int, float] = {}
    for workers in [int(w) for w in args.workers.split(",")]:
        with serving(root, workers) as (base, token, server), tempfile.TemporaryDirectory() as tmp:
            with nginx_in_front(root, base.removeprefix("http://"), Path(tmp)) as url:
                for size, payloads in bodies.items():
                    for clients in [int(c) for c in args.clients.split(",")]:
                        cpu_before = _tree_cpu_seconds(server.pid)
                        result = wrk_load(f"{url}/predict", token, payloads, args.seconds, clients, Path(tmp))
                        # The workers' CPU per request: what the load of other processes does not change.
                        cpu_ms = (_tree_cpu_seconds(server.pid) - cpu_before) * 1000 / (result["rps"] * args.seconds)
                        if size == 1:
                            best[workers] = max(best.get(workers, 0.0), result["rps"])
                        print(
                            f"| {workers} | {size} | {clients} | {result['rps']:,.0f} | "
                            f"{result['rps'] * size:,.0f} | {result['p50']:.1f} | {result['p99']:.1f} | "
                            f"{result['errors']} | {cpu_ms:.2f} |",
                            flush=True,
                        )
    print()
    for workers, rps in best.items():
        print(
            f"{workers} worker{'s' if workers > 1 else ''}: single-product {rps:,.0f} req/s = "
            f"{rps / batched:.0%} of the batched in-process rate of one core "
            f"({rps / (batched * workers):.0%} per core used)   [goal >= 25 % per core]"
        )


if __name__ == "__main__":
    main()
