"""Benchmark the whole pipeline at full size in a scratch copy of the project.

For each data set (demo rows and, when the real challenge sample is on this
machine, the sample replicated to full size) it prints, per stage and in
total, wall time and CPU time (user + sys over the process tree), peak memory
(summed over the process tree), a no-op ``dvc repro``, and two
``dvc exp run -S model.C=...`` relative to the full run measured just before.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import psutil

from mlops_rakuten.core.atomic import atomic_open
from mlops_rakuten.core.paths import X_FILE, Y_FILE
from mlops_rakuten.devtools.project_copy import add_raw_data, copy_project

ROOT = Path(__file__).resolve().parents[3]  # src/mlops_rakuten/devtools/ -> the project
REAL_SAMPLE = ROOT.parent / "shared" / "data" / "rakuten-sample"
FULL_SIZE = 84916
_STAGE = re.compile(r"Running stage '(\w+)'")


@dataclass
class Run:
    """One timed dvc command: wall and CPU seconds in total and per stage, peak tree RSS in bytes."""

    wall: float = 0.0
    cpu: float = 0.0
    peak_rss: int = 0
    stage_wall: dict[str, float] = field(default_factory=dict)
    stage_cpu: dict[str, float] = field(default_factory=dict)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_dvc(args: list[str], cwd: Path) -> Run:
    """Run ``dvc ARGS`` in ``cwd`` and measure it.

    Total CPU is exact (rusage of waited-for children). Per-stage CPU is
    sampled every 50 ms from every process of the tree, each process counted
    in the stage running when it was first seen, so it misses each process's
    last few milliseconds.
    """
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    run, cpu_before, start = Run(), _children_cpu(), time.perf_counter()
    proc = subprocess.Popen(
        ["dvc", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    current = ["dvc"]
    seen: dict[int, tuple[str, float]] = {}  # pid -> (stage, CPU seconds last seen)

    def sample() -> None:
        parent = psutil.Process(proc.pid)
        while proc.poll() is None:
            rss = 0
            try:
                tree = [parent, *parent.children(recursive=True)]
            except psutil.Error:  # dvc exited between poll() and the listing
                break
            for process in tree:
                try:
                    with process.oneshot():
                        rss += process.memory_info().rss
                        times = process.cpu_times()
                except psutil.Error:
                    continue
                stage = seen.get(process.pid, (current[0], 0.0))[0]
                seen[process.pid] = (stage, times.user + times.system)
            run.peak_rss = max(run.peak_rss, rss)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = start
    output = []
    assert proc.stdout is not None  # opened as a pipe above
    for line in proc.stdout:
        output.append(line)
        match = _STAGE.search(line)
        if match:
            now = time.perf_counter()
            if current[0] != "dvc":
                run.stage_wall[current[0]] = now - began
            current[0], began = match.group(1), now
    if proc.wait() != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed in {cwd}:\n{''.join(output[-30:])}")
    run.wall = time.perf_counter() - start
    run.cpu = _children_cpu() - cpu_before
    if current[0] != "dvc":
        run.stage_wall[current[0]] = time.perf_counter() - began
    sampler.join()
    for stage, cpu in seen.values():
        if stage in run.stage_wall:
            run.stage_cpu[stage] = run.stage_cpu.get(stage, 0.0) + cpu
    return run


def replicate_sample(source: Path, out_dir: Path, rows: int = FULL_SIZE) -> None:
    """Write challenge CSVs of ``rows`` rows made of copies of the ones in ``source``.

    Copy k > 0 of a product gets " n°k" appended to its title, so no copy is an
    exact duplicate (preprocess would drop it) while the text stays real text.
    Every word of the sample then appears at least twice, so the vocabulary is
    the sample's (far smaller than 85k real products would give).
    """
    x = pd.read_csv(source / X_FILE, index_col=0, keep_default_na=False, dtype=str)
    y = pd.read_csv(source / Y_FILE, index_col=0, keep_default_na=False, dtype=str)
    if not x.index.equals(y.index):
        raise SystemExit(f"{source}: {X_FILE} and {Y_FILE} do not have the same index")
    copy = pd.Series(range(rows)) // len(x)
    picked = pd.Series(range(rows)) % len(x)
    big_x = x.iloc[picked.to_numpy()].reset_index(drop=True)
    suffix = copy.map(lambda k: f" n°{k}" if k else "")
    big_x["designation"] = big_x["designation"] + suffix
    big_y = y.iloc[picked.to_numpy()].reset_index(drop=True)
    for frame, name in ((big_x, X_FILE), (big_y, Y_FILE)):
        with atomic_open(out_dir / name) as handle:
            frame.to_csv(handle, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)


def _commit(project: Path, message: str) -> None:
    subprocess.run(["git", "add", "-A"], cwd=project, check=True, capture_output=True)
    subprocess.run(["git", "commit", "-qm", message], cwd=project, check=True, capture_output=True)


def _line(label: str, run: Run, full: Run | None = None) -> str:
    text = f"  {label:<28} wall {run.wall:6.1f} s  cpu {run.cpu:6.1f} s  peak RSS {run.peak_rss / 2**30:.2f} GiB"
    if full is not None:
        text += f"  = {100 * run.wall / full.wall:3.0f} % of the full run (cpu {100 * run.cpu / full.cpu:3.0f} %)"
    return text


def bench(label: str, rows: int, c_values: list[float], source: Path | None = None, replicate: bool = False) -> None:
    """Full repro, no-op repro and one experiment per C value, in a fresh copy of the project.

    Raw data: ``rows`` demo rows, the CSVs in ``source``, or those replicated to ``rows``.
    """
    with tempfile.TemporaryDirectory(prefix="rakuten-bench-") as tmp:
        project = copy_project(ROOT, Path(tmp) / "project")
        if source is not None and replicate:
            raw = Path(tmp) / "raw"
            raw.mkdir()
            replicate_sample(source, raw, rows)
            source = raw
        add_raw_data(project, rows=rows, seed=42, source=source)
        print(f"{label}, {rows} rows", flush=True)
        full = timed_dvc(["repro"], project)
        for name, seconds in full.stage_wall.items():
            print(f"    {name:<12} wall {seconds:6.1f} s  cpu ~{full.stage_cpu.get(name, 0.0):5.1f} s")
        print(_line("full dvc repro", full), flush=True)
        print(_line("no-op dvc repro", timed_dvc(["repro"], project)), flush=True)
        _commit(project, "baseline")
        for c in c_values:
            exp = timed_dvc(["exp", "run", "-S", f"model.C={c}"], project)
            stages = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in exp.stage_wall.items())
            print(_line(f"dvc exp run -S model.C={c}", exp, full) + f"  ({stages or 'no stage ran'})", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=FULL_SIZE, help="rows per data set (default: the full challenge)")
    parser.add_argument("--data", type=Path, help="only this folder with the two challenge CSVs, as it is")
    parser.add_argument(
        "--sample",
        type=Path,
        default=REAL_SAMPLE,
        help="real challenge rows to replicate to --rows (skipped when absent)",
    )
    parser.add_argument("--only", choices=["demo", "real-like"], help="bench one data set only")
    parser.add_argument("--C", type=float, nargs="+", default=[0.1, 2.0], help="model.C of the experiment runs")
    args = parser.parse_args(argv)
    if args.data is not None:
        bench(f"data from {args.data}", len(pd.read_csv(args.data / Y_FILE)), args.C, source=args.data)
        return
    if args.only != "real-like":
        bench("demo data", args.rows, args.C)
    if args.only != "demo":
        if (args.sample / X_FILE).is_file() and (args.sample / Y_FILE).is_file():
            bench(
                f"real-like data (the {args.sample} rows replicated)",
                args.rows,
                args.C,
                source=args.sample,
                replicate=True,
            )
        else:
            print(f"real-like data: skipped, no {X_FILE} and {Y_FILE} in {args.sample}")


if __name__ == "__main__":
    main()
