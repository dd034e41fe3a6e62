"""`make bench-drift`: how fast the drift alerts fire on shifted traffic, and how quiet they stay on clean traffic.

Every product below goes through `rakuten predictions replay`'s code (monitoring/replay.py) with the workspace
model at RATE products an hour, and is read back from the log as drift reads it (log_files.read_window,
drift.window_frame); windows are scored against the workspace build's reference and test split as the monitor
scores them (significance.assess); the alert rules are replayed minute by minute (devtools/drift_alert_timeline.py)
and checked with `promtool test rules` on the same series.

- **clean**: 2 x COST_PRODUCTS demo products from a generator seed the model never saw (CLEAN_SEED), replayed and
  read back once; CLEAN_DAYS days of traffic drawn from them (with replacement) at RATE, scored with the monitor's
  short and day windows every STEP minutes (the day window every DAY_STEP: its content moves slowly).
- **scenarios**: a clean day, then SHIFT_HOURS of shifted traffic: a share (0..100 %) of genuine challenge
  products (../shared/data/rakuten-sample, cycled; where absent, English listings from outside the demo
  catalogue: devtools/out_of_catalogue.py), demo products of two classes only,
  or near-empty texts (one word of the title); time to the first alert and the first page from the shift.
- **false positives per window size**: FP_DRAWS windows of each size drawn from the clean products.
- **cost**: a day window of 100,000 logged products scored from the log files (both windows, `rakuten drift`'s
  code).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from mlops_rakuten.core.atomic import atomic_open
from mlops_rakuten.core.demo_data import generate
from mlops_rakuten.core.predict import load_model
from mlops_rakuten.devtools import drift_alert_timeline as timeline
from mlops_rakuten.devtools.out_of_catalogue import english_products
from mlops_rakuten.monitoring.drift import SHORT_PRODUCTS, measure_windows, reference_frame, window_frame
from mlops_rakuten.monitoring.log_files import read_window
from mlops_rakuten.monitoring.reference import HOLDOUT_MODEL_PATH, MODEL_PATH, TEST_SPLIT, TRAIN_SPLIT
from mlops_rakuten.monitoring.replay import ReplayModel, replay
from mlops_rakuten.monitoring.significance import ALPHA, PAGE_EFFECT, TESTS, assess
from mlops_rakuten.ops.dvcfiles import file_md5

ROOT = Path(__file__).resolve().parents[3]
GENUINE = ROOT.parent / "shared" / "data" / "rakuten-sample" / "X_train_update.csv"
GENUINE_KIND, FOREIGN_KIND = "genuine products", "out-of-catalogue (English)"
RATE = 3_600  # products an hour
STEP, DAY_STEP = 5, 15  # minutes between monitor runs; between day-window scorings of the clean week
CLEAN_DAYS, CLEAN_SEED, SHIFT_SEED = 7, 2_026, 2_027
SHIFT_HOURS = 3
SHARES = (0, 10, 20, 30, 50, 100)
TWO_CLASSES = (1560, 2583)
FP_SIZES = (100, 200, 500, 1_000, 2_000, 5_000, 10_000)
FP_DRAWS = 200
COST_PRODUCTS = 100_000
GOALS = {100: 30, 20: 60, 10: 120}  # share of shifted traffic -> minutes within which an alert must fire
PROMTOOL_FILE = ROOT / "tests" / "prometheus" / "drift_scenarios_test.yml"
START = datetime(2026, 1, 5, tzinfo=timezone.utc)


def demo(rows: int, seed: int) -> pd.DataFrame:
    x_rows, y_rows = generate(rows, seed)
    frame = pd.DataFrame([x[1:3] for x in x_rows], columns=["designation", "description"])
    frame["code"] = [int(y[1]) for y in y_rows]
    return frame


def logged(model: ReplayModel, products: pd.DataFrame, start: datetime) -> tuple[pd.DataFrame, np.ndarray]:
    """Replay the products from ``start`` at RATE, read the log back: (signal frame, minute of each row)."""
    with tempfile.TemporaryDirectory() as folder:
        replay(model, products[["designation", "description"]], Path(folder), start, RATE)
        rows = read_window(Path(folder), start).rows
    minutes = np.array([(datetime.fromisoformat(r["time"]) - START).total_seconds() / 60 for r in rows])
    return window_frame(model.pipeline, rows), minutes


def pool_and_cost(model: ReplayModel, products: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """The clean products' signal frame, replayed over the last two days (COST_PRODUCTS a day) and read back;
    and the seconds `rakuten drift`'s code takes to score both windows of the last day of it from the files."""
    now = datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory() as folder:
        replay(model, products, Path(folder), now - timedelta(days=2), COST_PRODUCTS / 24)
        rows = read_window(Path(folder), now - timedelta(days=2)).rows
        began = time.perf_counter()
        last_day = datetime.fromisoformat(rows[len(rows) - COST_PRODUCTS]["time"])
        windows = measure_windows(ROOT, read_window(Path(folder), last_day))
        seconds = time.perf_counter() - began
    print(f"a day of {len(windows[-1][1].window)} logged products scored in {seconds:.1f}s", flush=True)
    return window_frame(model.pipeline, rows), seconds


def score(frame: pd.DataFrame, minutes: np.ndarray, at: float, baseline, day: bool = True) -> timeline.Run:
    """Both windows as the monitor scores them at minute ``at`` (the short one alone when not ``day``)."""
    end = int(np.searchsorted(minutes, at, side="right"))
    hour = int(np.searchsorted(minutes, at - 60, side="right"))
    short = frame.iloc[min(hour, max(end - SHORT_PRODUCTS, 0)) : end].reset_index(drop=True)
    run = {"short": assess(short, baseline)}
    if day:
        start = int(np.searchsorted(minutes, at - 24 * 60, side="right"))
        run["day"] = assess(frame.iloc[start:end].reset_index(drop=True), baseline)
    return run


def shifted(kind: str, share: int, clean: pd.DataFrame, rows: int, rand: np.random.Generator) -> pd.DataFrame:
    if kind == "two classes":
        pool = clean[clean["code"].isin(TWO_CLASSES)]
        return pool.sample(rows, replace=True, random_state=int(rand.integers(1 << 31))).reset_index(drop=True)
    if kind == "near-empty text":
        terse = clean.sample(rows, replace=True, random_state=int(rand.integers(1 << 31))).reset_index(drop=True)
        terse["designation"] = [title.split()[0][:8] for title in terse["designation"]]
        terse["description"] = ""
        return terse
    if kind == "clean":
        return clean.iloc[:rows].reset_index(drop=True)
    if kind == GENUINE_KIND:
        foreign = pd.read_csv(GENUINE, dtype=str, keep_default_na=False)[["designation", "description"]]
    else:
        foreign = english_products(5_000, SHIFT_SEED)
    take = rand.random(rows) < share / 100
    out = clean.iloc[:rows].reset_index(drop=True).copy()
    picks = foreign.sample(int(take.sum()), replace=True, random_state=int(rand.integers(1 << 31)))
    out.loc[take, ["designation", "description"]] = picks.to_numpy()
    return out


def scenario_runs(model, day_frame, day_minutes, clean, kind, share, baseline) -> dict[int, timeline.Run]:
    """Monitor runs from 30 minutes before the shift to SHIFT_HOURS after, keyed by minute from 30 before."""
    shift_start = 24 * 60
    products = shifted(kind, share, clean, SHIFT_HOURS * RATE, np.random.default_rng(share + len(kind)))
    frame, minutes = logged(model, products, START + timedelta(minutes=shift_start))
    frame, minutes = pd.concat([day_frame, frame], ignore_index=True), np.concatenate([day_minutes, minutes])
    return {
        offset: score(frame, minutes, shift_start - 30 + offset, baseline)
        for offset in range(0, 30 + SHIFT_HOURS * 60 + 1, STEP)
    }


def clean_week(frame, minutes, baseline, rules, days: int) -> dict[str, Any]:
    runs: dict[int, timeline.Run] = {}
    day: dict = {}
    for at in range(60, days * 24 * 60 + 1, STEP):
        run = score(frame, minutes, at, baseline, day=at % DAY_STEP == 0)
        day = run.get("day", day)
        runs[at] = {**run, "day": day}
    span = range(60, days * 24 * 60 + 1)
    fired = {rule.name: timeline.firing(rule, runs, span) for rule in rules}
    starts = {  # an alert episode: a series going from not firing to firing
        name: sum(1 for m in span[1:] for key in series[m] if key not in series[m - 1])
        for name, series in fired.items()
    }
    return {
        "days": days,
        "runs": len(runs),
        "alerts_started": starts,
        "per_day": sum(starts.values()) / days,
    }


def false_positives(frame: pd.DataFrame, baseline, draws: int) -> list[dict[str, Any]]:
    rand = np.random.default_rng(0)
    table = []
    for size in FP_SIZES:
        verdicts = [
            assess(frame.iloc[rand.choice(len(frame), size, replace=False)].reset_index(drop=True), baseline)
            for _ in range(draws)
        ]
        table.append(
            {
                "products": size,
                "draws": draws,
                "significant": sum(any(r.significant for r in v.values()) for v in verdicts) / draws,
                "alert": sum(any(r.alert for r in v.values()) for v in verdicts) / draws,
            }
        )
    return table


def scenarios() -> list[tuple[str, int]]:
    kind = GENUINE_KIND if GENUINE.is_file() else FOREIGN_KIND
    return [("clean", 0), *[(kind, share) for share in SHARES if share], ("two classes", 100), ("near-empty text", 100)]


def first_alerts(rules, runs) -> dict[str, Any]:
    """Minutes from the shift to the first firing of each rule (None: not within SHIFT_HOURS)."""
    span = range(0, 30 + SHIFT_HOURS * 60 + 1)
    out = {}
    for rule in rules:
        first = timeline.first_firing(rule, timeline.firing(rule, runs, span))
        out[rule.name] = None if first is None else first - 30
    return out


def run(days: int, draws: int) -> tuple[dict[str, Any], list[dict]]:
    rules = timeline.rules(ROOT)
    pipeline = load_model(ROOT / MODEL_PATH)
    model = ReplayModel(pipeline, file_md5(ROOT / MODEL_PATH))
    reference = reference_frame(pipeline, ROOT / TRAIN_SPLIT)
    held_out = reference_frame(load_model(ROOT / HOLDOUT_MODEL_PATH), ROOT / TEST_SPLIT)
    baseline = lambda column: (held_out if column in ("score", "unknown_share") else reference)[column]  # noqa: E731
    began = time.perf_counter()
    pool, seconds = pool_and_cost(model, demo(2 * COST_PRODUCTS, CLEAN_SEED)[["designation", "description"]])
    # The clean week: products drawn (with replacement) from the pool, one every 3600 / RATE seconds.
    frame = pool.iloc[np.random.default_rng(CLEAN_SEED).integers(len(pool), size=days * 24 * RATE)]
    frame = frame.reset_index(drop=True)
    minutes = np.arange(len(frame)) * 60 / RATE
    day = 24 * RATE
    shift_pool = demo(40_000, SHIFT_SEED)
    results, cases = [], []
    for kind, share in scenarios():
        runs = scenario_runs(model, frame.iloc[:day], minutes[:day], shift_pool, kind, share, baseline)
        firsts = first_alerts(rules, runs)
        alerts = [m for name, m in firsts.items() if m is not None]
        page = firsts["RakutenDriftPage"]
        result = {
            "scenario": kind,
            "share": share,
            "first_alert_min": min(alerts, default=None),
            "first_page_min": page,
            "rules": firsts,
            "goal_min": None if kind == "clean" else GOALS.get(share),
        }
        results.append(result)
        cases.append(timeline.promtool_case(f"{kind} {share} %", rules, runs, range(0, 30 + SHIFT_HOURS * 60 + 1)))
        print(f"{kind} {share} %: first alert {result['first_alert_min']} min, page {page} min", flush=True)
    week = clean_week(frame, minutes, baseline, rules, days)
    print(f"clean week: {week['alerts_started']}", flush=True)
    fp = false_positives(pool, baseline, draws)
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "make bench-drift (python -m mlops_rakuten.devtools.drift_bench)",
        "cores": os.cpu_count(),
        "load_1min": round(os.getloadavg()[0], 2),
        "model": model.md5,
        "rate_per_hour": RATE,
        "monitor_step_min": STEP,
        "alpha": ALPHA,
        "min_effect": {s: t[2] for s, t in TESTS.items()},
        "page_effect": PAGE_EFFECT,
        "rules": {r.name: {"for_min": r.for_minutes, "severity": r.severity} for r in rules},
        "genuine_products": GENUINE.is_file(),
        "scenarios": results,
        "clean_week": week,
        "false_positives": fp,
        "day_window_seconds": round(seconds, 1),
        "day_window_products": COST_PRODUCTS,
        "seconds": round(time.perf_counter() - began),
    }, cases


def _minutes(value: int | None) -> str:
    return "none" if value is None else f"{value} min"


def table(data: dict[str, Any]) -> str:
    lines = [
        "| scenario | shifted | first alert | first page | goal |",
        "|---|---:|---:|---:|---|",
    ]
    for s in data["scenarios"]:
        goal = "no alert" if s["scenario"] == "clean" else "-" if s["goal_min"] is None else f"< {s['goal_min']} min"
        lines.append(
            f"| {s['scenario']} | {s['share']} % | {_minutes(s['first_alert_min'])} | "
            f"{_minutes(s['first_page_min'])} | {goal} |"
        )
    week = data["clean_week"]
    lines += [
        "",
        f"Clean traffic, {week['days']} simulated days ({week['runs']} monitor runs): "
        f"{sum(week['alerts_started'].values())} alert(s) ({week['per_day']:.2f} a day).",
        "",
        "| products per window | windows | any signal significant | any alert [95 % interval] |",
        "|---:|---:|---:|---:|",
    ]
    rows = data["false_positives"]
    lines += [
        f"| {r['products']:,} | {r['draws']} | {r['significant']:.1%} | {_rate(r['alert'] * r['draws'], r['draws'])} |"
        for r in rows
    ]
    alerts, windows = sum(r["alert"] * r["draws"] for r in rows), sum(r["draws"] for r in rows)
    lines += [f"| all sizes | {windows:,} | | {_rate(alerts, windows)} |"]
    lines += [
        "",
        f"A day window of {data['day_window_products']:,} logged products scored (both windows, from the files) in "
        f"{data['day_window_seconds']} s; {data['cores']} cores, load {data['load_1min']}, {data['date'][:10]}.",
    ]
    return "\n".join(lines)


def _rate(hits: float, n: int) -> str:
    """A share with its exact (Clopper-Pearson) 95 % interval."""
    low, high = binomtest(round(hits), n).proportion_ci(0.95, method="exact")
    return f"{round(hits) / n:.2%} [{low:.2%}, {high:.2%}]"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, help="print the Markdown tables of a results file and exit")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "drift.json")
    parser.add_argument("--days", type=int, default=CLEAN_DAYS, help=f"clean days simulated (default {CLEAN_DAYS})")
    parser.add_argument("--draws", type=int, default=FP_DRAWS, help=f"windows per size (default {FP_DRAWS})")
    args = parser.parse_args(argv)
    if args.table:
        print(table(json.loads(args.table.read_text(encoding="utf-8"))))
        return
    data, cases = run(args.days, args.draws)
    timeline.write_promtool_file(PROMTOOL_FILE, cases, "make bench-drift")
    with atomic_open(args.out, encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    print(table(data))


if __name__ == "__main__":
    main()
