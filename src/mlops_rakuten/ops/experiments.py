"""DVC experiments around the pipeline: wait for the queue, draw a learning curve (pr_report.py reports on a PR).

Everything goes through the ``dvc`` and ``git`` commands (not DVC's Python
internals), so it sees exactly what a person typing them would.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_rakuten.core.atomic import atomic_path
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.params import flatten_params
from mlops_rakuten.core.paths import LEARNING_CURVE, METRICS, PARAMS
from mlops_rakuten.ops.commands import dvc

log = logging.getLogger("experiments")


_PENDING = {"Queued", "Running"}


# --- the experiment queue ----------------------------------------------------------------------


def parse_queue_status(text: str) -> tuple[dict[str, tuple[str, str]], int]:
    """``dvc queue status`` output -> ({task id: (name, status)}, active workers).

    Cells are cut at the header's column starts: a name may be empty and a
    creation date has spaces, so splitting on whitespace would misplace them.
    """
    tasks: dict[str, tuple[str, str]] = {}
    lines = text.splitlines()
    header = re.match(r"(Task\s+)(Name\s+)(Created\s+)Status", lines[0]) if lines else None
    if header:
        name_at, created_at, status_at = header.end(1), header.end(2), header.end(3)
        for line in lines[1:]:
            if not line.strip():
                break
            tasks[line[:name_at].strip()] = (line[name_at:created_at].strip(), line[status_at:].strip())
    workers = re.search(r"Worker status: (\d+) active", text)
    return tasks, int(workers.group(1)) if workers else 0


def wait_for_queue_outcome(
    cwd: Path | None = None, poll: float = 5.0, timeout: float = 6 * 3600, no_worker_grace: float = 120.0
) -> dict[str, str]:
    """Block until no queued or running experiment is left; return {experiment name: final status}.

    Only tasks pending when the wait starts are judged, so a failure left over
    from an earlier sweep does not fail this one. Pending tasks with no worker
    for ``no_worker_grace`` seconds mean nobody ran ``dvc queue start``.
    """
    tasks, workers = parse_queue_status(dvc("queue", "status", cwd=cwd))
    watched = {task for task, (_, status) in tasks.items() if status in _PENDING}
    start = idle_since = time.monotonic()
    reported = -1
    while True:
        pending = {task: name for task, (name, status) in tasks.items() if status in _PENDING}
        if not pending:
            break
        if len(pending) != reported:  # a line per finished run, not per poll
            log.info("%d of %d experiments queued or running", len(pending), len(watched))
            reported = len(pending)
        now = time.monotonic()
        if now - start > timeout:
            raise InputError(f"experiments still pending after {timeout:.0f}s: {sorted(pending.values())}")
        if workers:
            idle_since = now
        elif now - idle_since > no_worker_grace:
            raise InputError("experiments are queued but no queue worker is running: run `dvc queue start`")
        time.sleep(poll)
        tasks, workers = parse_queue_status(dvc("queue", "status", cwd=cwd))
    return {tasks[t][0] or t: tasks[t][1] for t in watched if t in tasks}


def stop_lingering_workers(cwd: Path | None = None, grace: float = 30.0) -> int:
    """Make sure this repo's queue workers are gone once the queue is done; return how many were stopped.

    Each ``dvc exp queue-worker`` should exit by itself when the queue is
    empty, but with several workers one can miss the shutdown message and sit
    idle for ever, holding the terminal (or a caller's pipe) open. After
    ``grace`` seconds the stragglers get SIGTERM: celery's warm shutdown, safe
    since they have no task left.
    """
    import psutil

    root = (cwd or Path.cwd()).resolve()

    def workers() -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter(["cmdline", "cwd"]):
            cmdline, proc_cwd = proc.info["cmdline"] or [], proc.info["cwd"]
            if "queue-worker" in cmdline and proc_cwd and Path(proc_cwd).resolve() == root:
                found.append(proc)
        return found

    _, alive = psutil.wait_procs(workers(), timeout=grace)
    for proc in alive:
        log.warning("queue worker %d did not exit after the queue emptied: stopping it", proc.pid)
        proc.terminate()
    psutil.wait_procs(alive, timeout=grace)
    return len(alive)


# --- learning curve -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One finished row of ``dvc exp show``: a commit or an experiment, params flattened to ``a.b`` keys."""

    name: str
    timestamp: str
    params: dict[str, object]
    metrics: dict[str, Any]


def _as_run(entry: dict) -> Run:
    data = entry.get("data") or {}
    params = ((data.get("params") or {}).get(PARAMS) or {}).get("data") or {}
    metrics = ((data.get("metrics") or {}).get(METRICS) or {}).get("data") or {}
    return Run(entry.get("name") or entry["rev"][:7], data.get("timestamp") or "", flatten_params(params), metrics)


def baseline_and_experiments(show: list[dict]) -> tuple[Run, list[Run]]:
    """The baseline commit of ``dvc exp show --json`` (HEAD) and its experiments that produced metrics."""
    for entry in show:
        if entry.get("rev") == "workspace":
            continue
        experiments = [
            _as_run(rev)
            for exp in entry.get("experiments") or []
            for rev in exp.get("revs") or []
            if not rev.get("error")
        ]
        return _as_run(entry), [run for run in experiments if run.metrics]
    raise InputError("dvc exp show lists no commit: commit the project first")


def learning_curve_points(show: list[dict], knob: str = "ingest.fraction") -> list[Run]:
    """Runs that differ from the baseline in ``knob`` only, one per value (the newest), by training rows.

    Anything else changed (another C, another seed) would mix two effects in one curve.
    """
    baseline, experiments = baseline_and_experiments(show)
    others = {k: v for k, v in baseline.params.items() if k != knob}
    newest: dict[object, Run] = {}
    for run in sorted([baseline, *experiments], key=lambda r: r.timestamp):
        same_otherwise = {k: v for k, v in run.params.items() if k != knob} == others
        if same_otherwise and run.metrics.get("n_train") and "f1_weighted" in run.metrics:
            newest[run.params.get(knob)] = run
    return sorted(newest.values(), key=lambda r: r.metrics["n_train"])


def plot_learning_curve(points: list[Run], path: Path, knob: str = "ingest.fraction") -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    rows = [run.metrics["n_train"] for run in points]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    for key, label in (("f1_weighted", "weighted F1"), ("f1_macro", "macro F1")):
        if all(key in run.metrics for run in points):
            ax.plot(rows, [run.metrics[key] for run in points], marker="o", label=label)
    for run, n in zip(points, rows, strict=True):
        ax.annotate(
            str(run.params.get(knob)),
            (n, run.metrics["f1_weighted"]),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=8,
        )
    ax.margins(x=0.08, y=0.15)
    ax.set_xlabel(f"training rows (points labelled with {knob})")
    ax.set_ylabel("F1 on the test split")
    # ingest samples before the split, so the test split shrinks with the fraction too.
    ax.set_title(f"Learning curve: F1 vs training rows ({knob} sweep; each on its own test split)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


def learning_curve(out: Path = Path(LEARNING_CURVE), cwd: Path | None = None) -> list[Run]:
    """Read ``dvc exp show --json``, draw F1 against training rows into ``out``, return the points."""
    points = learning_curve_points(json.loads(dvc("exp", "show", "--json", cwd=cwd)))
    if len(points) < 2:
        raise InputError(
            f"a learning curve needs at least 2 finished runs that differ from HEAD only in "
            f"ingest.fraction, found {len(points)}: run `make learning-curve`"
        )
    plot_learning_curve(points, (cwd or Path.cwd()) / out)
    return points
