"""`make bench-gate`: the label screen and the retrain gate on clean and poisoned batches, over 20 seeds.

What is real and what is simulated, per seed:

- **production**: the demo generator's products (PRODUCTION_ROWS, seed 1000 + s), a stratified 90/10
  split; the holdout model (build_vectorizer + fit_linear_svc with params.yaml, as the featurize and
  train stages fit it) on the 90 %; its accuracy, per-class recall and confusion on the 10 % are what
  the screen expects (as the evaluate stage writes them); the 10 % is the frozen evaluation set.
- **two batches from another draw** of the generator, raw indices after production's (so
  core/batches.py holds the same 20 % out as an upload's): FIVE_ROWS products of five classes only
  (10, 1160, 1280, 2583, 2705, seed 5000 + s), a class mix far from production's; ALL_ROWS products
  of all 27 classes in the generator's shares (seed 6000 + s), where class 2583 has 36 rows.
- **scenarios**: each batch's labels as drawn (a genuine improvement: more products); the five-class
  batch's labels shuffled; in each batch 30 % of class 2583 relabelled 1280.
- **screen**: monitoring/label_screen.py's ``screen_batch``, exactly as `rakuten ingest` runs it.
- **gate**: the candidate is a holdout model fitted in process on production's 90 % plus the batch's
  trainable 80 % (not `dvc exp run`: no DVC, no registry); slices.py's ``decide`` judges it against
  production on the frozen set and on the batch's held-out rows (with the batch's own labels, as the
  retrain's per-source slice has them). The gate is run on every batch, also the quarantined ones, to
  show what it would decide alone.

The raw results go to docs/bench/gate.json (atomically); ``--table FILE`` prints the Markdown tables
of such a file (docs/monitoring.md shows them through docs/outputs.py).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from mlops_rakuten.core.atomic import atomic_open
from mlops_rakuten.core.batches import is_held_out
from mlops_rakuten.core.demo_data import generate
from mlops_rakuten.core.features import build_vectorizer
from mlops_rakuten.core.one_vs_rest import fit_linear_svc
from mlops_rakuten.core.params import read_params
from mlops_rakuten.core.predict import decision_values
from mlops_rakuten.monitoring.label_pairs import Confusion, confusion
from mlops_rakuten.monitoring.label_screen import screen_batch
from mlops_rakuten.monitoring.label_statistics import Measured
from mlops_rakuten.monitoring.slices import Slice, decide

ROOT = Path(__file__).resolve().parents[3]
PRODUCTION_ROWS, FIVE_ROWS, ALL_ROWS = 20000, 400, 300
SHIFTED_CLASSES = (10, 1160, 1280, 2583, 2705)
MOVED_FROM, MOVED_TO, MOVED_SHARE = 2583, 1280, 0.3
MOVED = f"30 % of {MOVED_FROM} as {MOVED_TO}"
# scenario -> (batch, poisoning): "five" the five-class batch, "all" the 27-class one
SCENARIOS = {
    "clean, 5 classes": ("five", None),
    "5 classes, labels shuffled": ("five", "shuffled"),
    f"5 classes, {MOVED}": ("five", "moved"),
    "clean, 27 classes": ("all", None),
    f"27 classes, {MOVED}": ("all", "moved"),
}
COLUMNS = ["designation", "description", "prdtypecode"]


def products(rows: int, seed: int) -> pd.DataFrame:
    x, y = generate(rows, seed)
    return pd.DataFrame([[a[1], a[2], int(b[1])] for a, b in zip(x, y, strict=True)], columns=COLUMNS)


def five_class_batch(seed: int, first_index: int) -> pd.DataFrame:
    drawn = products(FIVE_ROWS * 8, seed)
    picked = drawn[drawn["prdtypecode"].isin(SHIFTED_CLASSES)].sample(FIVE_ROWS, random_state=seed)
    return picked.set_axis(range(first_index, first_index + FIVE_ROWS))


def all_class_batch(seed: int, first_index: int) -> pd.DataFrame:
    return products(ALL_ROWS, seed).set_axis(range(first_index, first_index + ALL_ROWS))


def poisoned(batch: pd.DataFrame, poisoning: str | None, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = batch["prdtypecode"].to_numpy().copy()
    if poisoning == "shuffled":
        labels = rng.permutation(labels)
    elif poisoning == "moved":
        pool = np.flatnonzero(labels == MOVED_FROM)
        labels[rng.choice(pool, int(MOVED_SHARE * len(pool)), replace=False)] = MOVED_TO
    return batch.assign(prdtypecode=labels)


def fit(frame: pd.DataFrame, params: dict[str, Any]) -> Pipeline:
    vectorizer = build_vectorizer({**params["featurize"], "n_jobs": 1})
    features = vectorizer.fit_transform(frame)
    classifier = fit_linear_svc(features, frame["prdtypecode"].to_numpy(), params["model"], n_jobs=1)
    return Pipeline([("features", vectorizer), ("classifier", classifier)])


def predict(model: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.classes_)[decision_values(model, frame).argmax(axis=1)]


def expected_metrics(actual: np.ndarray, predicted: np.ndarray) -> tuple[Measured, dict[int, Measured], Confusion]:
    """What the evaluate stage would write, as label_screen.production_metrics reads it."""
    recalls = {}
    for code in np.unique(actual):
        mine = actual == code
        recalls[int(code)] = Measured(float((predicted[mine] == code).mean()), int(mine.sum()))
    return Measured(float((actual == predicted).mean()), len(actual)), recalls, confusion(actual, predicted)


def names_the_move(screen: dict[str, Any]) -> bool:
    """The screen names both classes of the relabelling: a pair, or a class with where its rows went."""
    pairs = {(p["given"], p["predicted_as"]) for p in screen.get("pairs", [])}
    classes = {(c["class"], c["predicted_as"]) for c in screen["classes"]}
    return (MOVED_TO, MOVED_FROM) in pairs | classes


def one_seed(seed: int, params: dict[str, Any]) -> list[dict[str, Any]]:
    base = products(PRODUCTION_ROWS, 1000 + seed)
    train, frozen = train_test_split(base, test_size=0.1, stratify=base["prdtypecode"], random_state=seed)
    production = fit(train, params)
    frozen_production = predict(production, frozen)
    expected, recalls, test = expected_metrics(frozen["prdtypecode"].to_numpy(), frozen_production)
    clean = {
        "five": five_class_batch(5000 + seed, PRODUCTION_ROWS),
        "all": all_class_batch(6000 + seed, PRODUCTION_ROWS),
    }
    rows = []
    for scenario, (kind, poisoning) in SCENARIOS.items():
        batch = poisoned(clean[kind], poisoning, seed)
        held = is_held_out(batch.index)
        screen = screen_batch(production, batch, expected, recalls, test)
        candidate = fit(pd.concat([train, batch[~held]]), params)
        own = batch[held]
        decision = decide(
            [
                Slice("frozen", frozen["prdtypecode"].to_numpy(), frozen_production, predict(candidate, frozen)),
                Slice(
                    "held out batch", own["prdtypecode"].to_numpy(), predict(production, own), predict(candidate, own)
                ),
            ]
        )
        outcome = "screen quarantined" if not screen["passed"] else "accepted" if decision.accepted else "gate refused"
        rows.append(
            {
                "seed": seed,
                "scenario": scenario,
                "poisoned": poisoning is not None,
                "outcome": outcome,
                "gate_alone_refuses": not decision.accepted,
                "names_the_move": poisoning == "moved" and names_the_move(screen),
                "agreement": screen["agreement"],
                "expected": screen["expected"],
                "flagged": [f"{c['class']}<-{c['predicted_as']}" for c in screen["classes"]],
                "pairs": [f"{p['given']}<-{p['predicted_as']} p={p['p_value']:.1e}" for p in screen["pairs"]],
                "slices": [[s.delta, s.low, s.high] for s in decision.slices],
            }
        )
    return rows


def table(data: dict[str, Any]) -> str:
    """Two tables, narrow enough for the docs' text column: the decisions, then the gate's intervals."""
    rows, seeds = data["rows"], data["seeds"]
    decisions = [
        "| scenario | screen quarantined | gate refused | accepted | gate alone refuses | agreement (expected) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    intervals = [
        "| scenario | frozen ΔF1 [95 % interval] | batch held-out ΔF1 [95 % interval] |",
        "|---|---|---|",
    ]
    named = []
    for scenario in data["scenarios"]:
        mine = [r for r in rows if r["scenario"] == scenario]
        counts = Counter(r["outcome"] for r in mine)
        agreement = [r["agreement"] for r in mine]
        spans = [np.median([r["slices"][i] for r in mine], axis=0) for i in (0, 1)]
        decisions.append(
            f"| {scenario} | {counts['screen quarantined']} | {counts['gate refused']} | {counts['accepted']} "
            f"| {sum(r['gate_alone_refuses'] for r in mine)} "
            f"| {min(agreement):.2f} to {max(agreement):.2f} ({np.median([r['expected'] for r in mine]):.2f}) |"
        )
        intervals.append(
            f"| {scenario} | " + " | ".join(f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]" for d, lo, hi in spans) + " |"
        )
        if MOVED in scenario:
            named.append(f"{scenario}: {sum(r['names_the_move'] for r in mine)} of {len(mine)}")
    head = (
        f"{seeds} seeds, {data['date'][:10]}, {data['seconds']} s on {data['cores']} cores (load {data['load_1min']}); "
        f"production {data['production_rows']} demo products (90 % train, 10 % frozen); batches of "
        f"{data['five_rows']} products of 5 classes and {data['all_rows']} of all 27. ΔF1: candidate minus "
        "production on the gate's slices, median over the seeds of the change and of its interval."
    )
    foot = f"Quarantines naming both {MOVED_TO} and {MOVED_FROM}: " + "; ".join(named) + "."
    return "\n".join([head, "", *decisions, "", *intervals, "", foot])


def run(seeds: int, params: dict[str, Any], verbose: bool) -> dict[str, Any]:
    start, rows = time.perf_counter(), []
    for seed in range(seeds):
        rows += one_seed(seed, params)
        if verbose:
            for row in rows[-len(SCENARIOS) :]:
                print({k: v for k, v in row.items() if k != "slices"}, flush=True)
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "make bench-gate (python -m mlops_rakuten.devtools.gate_bench)",
        "cores": os.cpu_count(),
        "load_1min": round(os.getloadavg()[0], 2),
        "seconds": round(time.perf_counter() - start),
        "seeds": seeds,
        "production_rows": PRODUCTION_ROWS,
        "five_rows": FIVE_ROWS,
        "all_rows": ALL_ROWS,
        "scenarios": list(SCENARIOS),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, help="print the Markdown tables of a results file and exit")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "gate.json", help="results (JSON)")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--verbose", action="store_true", help="one line per seed and scenario")
    args = parser.parse_args(argv)
    if args.table:
        print(table(json.loads(args.table.read_text(encoding="utf-8"))))
        return
    params = {section: read_params(ROOT / "params.yaml", section) for section in ("featurize", "model")}
    data = run(args.seeds, params, args.verbose)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(args.out) as out:
        json.dump(data, out, indent=1)
        out.write("\n")
    print(table(data))
    print(f"\nresults: {args.out}")


if __name__ == "__main__":
    main()
