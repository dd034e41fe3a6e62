"""How the pipeline's cost grows with the catalogue: every stage on demo data of growing size (make bench-scale).

For each size, a scratch copy of the project gets that many demo products (core/demo_data.py: its
rare product lines and shop names make the vocabulary grow with the rows), then every stage of
dvc.yaml runs on its own, in order, as ``dvc repro -s STAGE`` in a wrapper process. Per stage it
records wall time, CPU time (user + system of DVC and the stage's processes) and peak memory: the
largest ru_maxrss among them, which is the stage's own process (DVC itself stays near 0.1 GB).
After featurize it records the train matrix's features and non-zeros.

Results go to docs/bench/scale.json (merged by size, so ``--sizes`` reruns only some) and a log-log
chart of time and memory against rows to docs/img/scale.png. ``--table FILE`` prints the Markdown
table of a results file; ``--plot FILE`` redraws the chart from it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from mlops_rakuten.core.atomic import atomic_open, atomic_path
from mlops_rakuten.core.feature_files import load_features
from mlops_rakuten.devtools.benchmark import ROOT
from mlops_rakuten.devtools.project_copy import add_raw_data, copy_project

SIZES = [85_000, 170_000, 425_000, 850_000]
RESULTS = ROOT / "docs" / "bench" / "scale.json"
CHART = ROOT / "docs" / "img" / "scale.png"
# Runs `dvc repro -s STAGE` and prints its children's rusage: the peak is per process, so a fresh
# wrapper per stage sees that stage's processes only.
_WRAPPER = """
import json, resource, subprocess, sys
done = subprocess.run(["dvc", "repro", "-q", "-s", sys.argv[1]])
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": done.returncode, "cpu": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss}))
"""


def stage_names(project: Path) -> list[str]:
    """The stages in dvc.yaml's order, which is the order they depend on each other."""
    return list(yaml.safe_load((project / "dvc.yaml").read_text(encoding="utf-8"))["stages"])


def run_stage(project: Path, stage: str) -> dict[str, float]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _WRAPPER, stage], cwd=project, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    lines = done.stdout.strip().splitlines()
    usage = json.loads(lines[-1]) if lines else {"rc": done.returncode}
    if done.returncode != 0 or usage["rc"] != 0:
        raise SystemExit(f"dvc repro -s {stage} failed in {project}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return {"wall_s": round(wall, 2), "cpu_s": round(usage["cpu"], 2), "peak_gb": round(usage["maxrss_kb"] / 2**20, 3)}


def bench_size(rows: int) -> dict[str, Any]:
    """Every stage on ``rows`` demo products, in a fresh copy of the project."""
    with tempfile.TemporaryDirectory(prefix="rakuten-scale-") as tmp:
        project = copy_project(ROOT, Path(tmp) / "project")
        start = time.perf_counter()
        add_raw_data(project, rows=rows, seed=42)
        print(f"{rows:,} products: demo data in {time.perf_counter() - start:.0f} s", flush=True)
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        result: dict[str, Any] = {"rows": rows, "load": load, "stages": {}}
        for stage in stage_names(project):
            result["stages"][stage] = run_stage(project, stage)
            print(f"  {stage:<13} {result['stages'][stage]}", flush=True)
            if stage == "featurize":
                x, _ = load_features(project / "data" / "features" / "train.joblib", mmap_mode="r")
                result["train_rows"], result["features"], result["nonzeros"] = x.shape[0], x.shape[1], int(x.nnz)
                print(f"  train matrix: {x.shape[0]:,} rows x {x.shape[1]:,} features, {x.nnz:,} non-zeros")
                del x
    return result


def _totals(result: dict[str, Any]) -> tuple[float, float, float]:
    stages = result["stages"].values()
    return sum(s["wall_s"] for s in stages), sum(s["cpu_s"] for s in stages), max(s["peak_gb"] for s in stages)


def table(results: dict[str, Any]) -> str:
    """Markdown: one row per size and stage, then the pipeline's total per size."""
    runs = sorted(results["runs"], key=lambda run: run["rows"])
    lines = [
        f"{results['date']}, {results['cores']} cores (load {results['load']}), solver `{results['solver']}`; "
        f"`{results['command']}`",
        "",
        "| Products | Stage | Wall s | CPU s | Peak GB | Wall µs / product | CPU µs / product |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        for stage, cost in run["stages"].items():
            wall_per, cpu_per = (1e6 * cost[key] / run["rows"] for key in ("wall_s", "cpu_s"))
            lines.append(
                f"| {run['rows']:,} | {stage} | {cost['wall_s']:.1f} | {cost['cpu_s']:.1f} | "
                f"{cost['peak_gb']:.2f} | {wall_per:.0f} | {cpu_per:.0f} |"
            )
        wall, cpu, peak = _totals(run)
        lines.append(
            f"| {run['rows']:,} | **all** ({run['features']:,} features, {run['nonzeros'] / 1e6:.1f} M non-zeros) | "
            f"**{wall:.1f}** | **{cpu:.1f}** | **{peak:.2f}** | **{1e6 * wall / run['rows']:.0f}** | "
            f"**{1e6 * cpu / run['rows']:.0f}** |"
        )
    return "\n".join(lines)


def plot(results: dict[str, Any], out: Path) -> None:
    """Log-log against products: CPU time per stage, wall and CPU in total, and each stage's peak memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sorted(results["runs"], key=lambda run: run["rows"])
    rows = [run["rows"] for run in runs]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for stage in runs[0]["stages"]:  # CPU per stage: the wall time of a shared machine depends on its load
        left.plot(rows, [run["stages"][stage]["cpu_s"] for run in runs], marker="o", label=f"{stage} (CPU)")
    left.plot(rows, [_totals(run)[0] for run in runs], marker="s", color="black", label="all stages, wall")
    left.plot(rows, [_totals(run)[1] for run in runs], marker="s", color="grey", label="all stages, CPU")
    left.plot(rows, [_totals(runs[0])[1] * r / rows[0] for r in rows], ls="--", color="grey", label="linear")
    left.set(xscale="log", yscale="log", xlabel="products", ylabel="seconds", title="Time")
    left.legend(fontsize=7)
    for stage in runs[0]["stages"]:
        right.plot(rows, [run["stages"][stage]["peak_gb"] for run in runs], marker="o", label=stage)
    right.axhline(4.0, ls=":", color="red", label="4 GB goal")
    right.set(xscale="log", yscale="log", xlabel="products", ylabel="peak RSS (GB)", title="Peak memory per stage")
    right.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)


def merged(previous: Path, runs: list[dict[str, Any]], command: str) -> dict[str, Any]:
    """The new runs, plus the sizes of ``previous`` they did not rerun."""
    kept = json.loads(previous.read_text(encoding="utf-8"))["runs"] if previous.is_file() else []
    sizes = {run["rows"] for run in runs}
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "cores": os.cpu_count(),
        "load": ", ".join(f"{value:.1f}" for value in os.getloadavg()),
        "solver": params["model"]["solver"],
        "runs": sorted([run for run in kept if run["rows"] not in sizes] + runs, key=lambda run: run["rows"]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES, help="products per run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON (merged by size)")
    parser.add_argument("--chart", type=Path, default=CHART, help="log-log PNG")
    parser.add_argument("--table", type=Path, metavar="JSON", help="only print the Markdown table of this file")
    parser.add_argument("--plot", type=Path, metavar="JSON", help="only redraw --chart from this file")
    args = parser.parse_args(argv)
    if args.table or args.plot:
        if args.table:
            print(table(json.loads(args.table.read_text(encoding="utf-8"))))
        if args.plot:
            plot(json.loads(args.plot.read_text(encoding="utf-8")), args.chart)
        return
    bin_dir = str(Path(sys.executable).parent)  # dvc, rakuten and the stages' python from this venv
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    command = "python -m mlops_rakuten.devtools.scale_bench --sizes " + " ".join(map(str, args.sizes))
    for rows in args.sizes:  # written after each size: a long run interrupted keeps what it measured
        results = merged(args.out, [bench_size(rows)], command)
        with atomic_open(args.out) as handle:
            handle.write(json.dumps(results, indent=1) + "\n")
        plot(results, args.chart)
    print(table(results))


if __name__ == "__main__":
    main()
