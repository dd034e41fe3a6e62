"""What the prediction log costs /predict: p50 and p99 over HTTP with the log off, then on, in turns.

`make bench-prediction-log`: a real `rakuten serve` on loopback each time, driven by wrk (or httpx) with
the project's own products; rounds alternate so a machine busy with something else hurts both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from prometheus_client import CollectorRegistry

from mlops_rakuten.core.errors import InputError, exit_on_input_error
from mlops_rakuten.devtools.serve_bench import sample_texts, serving, wrk_load
from mlops_rakuten.monitoring.prediction_log import LogSettings, PredictionLog
from mlops_rakuten.serve.settings import MODEL_PATH

# The one benchmark user logs far more than a user's budget allows: lifted, so every record is written and timed.
UNLIMITED_BYTES = float(2**50)


def in_process(texts: list[tuple[str, str]], n: int = 5_000) -> tuple[float, float]:
    """Microseconds per record (n under the queue size: none dropped): what a request pays (queue put), and the writer's whole work (clean, JSON, write)."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = LogSettings(folder=Path(tmp), user_bytes_per_minute=UNLIMITED_BYTES)
        log = PredictionLog(settings, CollectorRegistry())
        model = SimpleNamespace(md5="0" * 32)  # text mode reads only the md5
        codes, scores = np.array([2583, 2582, 1560]), np.array([0.9, 0.05, 0.01])
        start = time.perf_counter()
        for i in range(n):
            designation, description = texts[i % len(texts)]
            log.append(designation, description, codes, scores, model)
        queued = time.perf_counter() - start
        log.flush(timeout=300)
        written = time.perf_counter() - start
        log.close()
    return queued / n * 1e6, written / n * 1e6


def one_round(root: Path, mode: str, bodies: list[str], seconds: int, connections: int) -> dict:
    os.environ["RAKUTEN_PREDICTION_LOG"] = mode  # serving() hands os.environ to the server
    os.environ["RAKUTEN_PREDICTION_LOG_USER_MB_PER_MINUTE"] = str(UNLIMITED_BYTES / 2**20)
    with serving(root) as (base, token, _), tempfile.TemporaryDirectory() as tmp:
        return wrk_load(f"{base}/predict", token, bodies, seconds, connections, Path(tmp))


@exit_on_input_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--project", type=Path, default=Path.cwd())
    parser.add_argument("--seconds", type=int, default=10, help="per round (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per setting (default 3)")
    parser.add_argument("--connections", type=int, default=4, help="concurrent connections (default 4)")
    args = parser.parse_args(argv)
    root = args.project.resolve()
    if not (root / MODEL_PATH).is_file():
        raise InputError(f"{root / MODEL_PATH}: no model to serve; run `make run` first")
    if not shutil.which("wrk"):
        raise InputError("wrk is not installed (apt-get install wrk)")
    texts = sample_texts(root)
    queued, written = in_process(texts)
    print(
        f"in process: {queued:.1f} us per prediction to queue a record (the request's share), {written:.0f} us "
        f"of the writer thread per record (clean, JSON, write), against milliseconds per prediction"
    )
    bodies = [json.dumps({"designation": d, "description": s, "top_k": 3}) for d, s in texts]
    results: dict[str, list[dict]] = {"off": [], "text": []}
    for _ in range(args.rounds):
        for mode in results:
            results[mode].append(one_round(root, mode, bodies, args.seconds, args.connections))
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; wrk, {args.connections} "
        f"connections, {args.rounds} x {args.seconds} s per setting, medians of the rounds"
    )
    medians = {}
    for mode, runs in results.items():
        rounds = ", ".join(f"{r['p50']:.2f}" for r in runs)
        medians[mode] = {key: statistics.median(r[key] for r in runs) for key in ("p50", "p99", "rps")}
        print(
            f"prediction log {mode:<5}: p50 {medians[mode]['p50']:.2f} ms, p99 {medians[mode]['p99']:.2f} ms, "
            f"{medians[mode]['rps']:.0f} req/s   (p50 per round: "
            f"{rounds})"
        )
    print(
        f"cost of the log: p50 {medians['text']['p50'] - medians['off']['p50']:+.2f} ms, "
        f"throughput {100 * (medians['text']['rps'] / medians['off']['rps'] - 1):+.1f} %"
    )


if __name__ == "__main__":
    main()
