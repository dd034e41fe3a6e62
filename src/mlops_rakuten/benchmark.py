"""Benchmark the whole pipeline in a scratch copy of the project.

Prints wall time per stage, the total, peak memory (summed over the process
tree), a no-op ``dvc repro``, and ``dvc exp run -S model.C=...`` relative to
the full run.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from mlops_rakuten.params import read_params
from mlops_rakuten.workspace import add_raw_data, copy_project

ROOT = Path(__file__).resolve().parents[2]
_STAGE = re.compile(r"Running stage '(\w+)'")


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def timed_dvc(args: list[str], cwd: Path) -> tuple[float, dict[str, float], int]:
    """Run ``dvc ARGS``; return total seconds, seconds per stage and peak tree RSS in bytes."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    start = time.perf_counter()
    proc = subprocess.Popen(["dvc", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    peak = [0]

    def sample() -> None:
        parent = psutil.Process(proc.pid)
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(parent))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stages: dict[str, float] = {}
    current, began = None, start
    for line in proc.stdout:
        match = _STAGE.search(line)
        if match:
            now = time.perf_counter()
            if current:
                stages[current] = now - began
            current, began = match.group(1), now
    if proc.wait() != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed in {cwd}")
    total = time.perf_counter() - start
    if current:
        stages[current] = time.perf_counter() - began
    sampler.join()
    return total, stages, peak[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=84916, help="demo rows (default: the full challenge size)")
    parser.add_argument("--data", type=Path, help="folder with the two challenge CSVs, instead of demo data")
    parser.add_argument("--C", type=float, help="model.C for the experiment run (default: twice the current one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rakuten-bench-") as tmp:
        project = copy_project(ROOT, Path(tmp) / "project")
        add_raw_data(project, rows=args.rows, seed=42, source=args.data)
        total, stages, peak = timed_dvc(["repro"], project)
        for name, seconds in stages.items():
            print(f"  {name:<11} {seconds:6.1f} s")
        print(f"full dvc repro    {total:6.1f} s   peak RSS {peak / 2**30:.2f} GiB")
        noop, _, _ = timed_dvc(["repro"], project)
        print(f"no-op dvc repro   {noop:6.1f} s")
        subprocess.run(["git", "add", "-A"], cwd=project, check=True, capture_output=True)
        subprocess.run(["git", "commit", "-qm", "baseline"], cwd=project, check=True, capture_output=True)
        c = args.C or 2 * read_params(project / "params.yaml", "model")["C"]
        exp, exp_stages, _ = timed_dvc(["exp", "run", "-S", f"model.C={c}"], project)
        print(f"dvc exp run -S model.C={c}  {exp:6.1f} s = {100 * exp / total:.0f} % of the full run "
              f"(stages run: {', '.join(exp_stages) or 'none'})")


if __name__ == "__main__":
    main()
