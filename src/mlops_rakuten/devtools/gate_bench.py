"""`make bench-gate`: the label screen and the retrain gate on clean and poisoned batches, over 20 seeds.

What is real and what is simulated, per seed:

- **production**: the demo generator's products (PRODUCTION_ROWS, seed 1000 + s), a stratified 90/10
  split; the holdout model (build_vectorizer + fit_linear_svc with params.yaml, as the featurize and
  train stages fit it) on the 90 %; its accuracy and per-class recall on the 10 % are the metrics the
  screen expects (as the evaluate stage writes them); the 10 % is the frozen evaluation set.
- **a batch from a shifted source**: BATCH_ROWS products of another draw (seed 5000 + s) of five
  classes only (10, 1160, 1280, 2583, 2705), so its class mix is far from production's; raw indices
  after production's, so core/batches.py holds the same 20 % out as an upload's.
- **scenarios**: its labels as drawn (a genuine improvement: more products of those classes); the same
  labels shuffled; 30 % of class 2583 relabelled 1280.
- **screen**: monitoring/label_screen.py's ``screen_batch``, exactly as `rakuten ingest` runs it.
- **gate**: the candidate is a holdout model fitted in process on production's 90 % plus the batch's
  trainable 80 % (not `dvc exp run`: no DVC, no registry); slices.py's ``decide`` judges it against
  production on the frozen set and on the batch's held-out rows (with the batch's own labels, as the
  retrain's per-source slice has them). The gate is run on every batch, also the quarantined ones, to
  show what it would decide alone.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from mlops_rakuten.core.batches import is_held_out
from mlops_rakuten.core.demo_data import generate
from mlops_rakuten.core.features import build_vectorizer
from mlops_rakuten.core.one_vs_rest import fit_linear_svc
from mlops_rakuten.core.params import read_params
from mlops_rakuten.core.predict import decision_values
from mlops_rakuten.monitoring.label_screen import Measured, screen_batch
from mlops_rakuten.monitoring.slices import Slice, decide

PRODUCTION_ROWS, BATCH_ROWS = 20000, 400
SHIFTED_CLASSES = (10, 1160, 1280, 2583, 2705)
MOVED_FROM, MOVED_TO, MOVED_SHARE = 2583, 1280, 0.3
SCENARIOS = ("clean, shifted source", "labels shuffled", "30 % of 2583 as 1280")
COLUMNS = ["designation", "description", "prdtypecode"]


def products(rows: int, seed: int) -> pd.DataFrame:
    x, y = generate(rows, seed)
    return pd.DataFrame([[a[1], a[2], int(b[1])] for a, b in zip(x, y, strict=True)], columns=COLUMNS)


def shifted_batch(seed: int, first_index: int) -> pd.DataFrame:
    drawn = products(BATCH_ROWS * 8, seed)
    picked = drawn[drawn["prdtypecode"].isin(SHIFTED_CLASSES)].sample(BATCH_ROWS, random_state=seed)
    return picked.set_axis(range(first_index, first_index + BATCH_ROWS))


def poisoned(batch: pd.DataFrame, scenario: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = batch["prdtypecode"].to_numpy().copy()
    if scenario == SCENARIOS[1]:
        labels = rng.permutation(labels)
    elif scenario == SCENARIOS[2]:
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


def expected_metrics(actual: np.ndarray, predicted: np.ndarray) -> tuple[Measured, dict[int, Measured]]:
    """What the evaluate stage would write, as label_screen.parse_metrics reads it."""
    recalls = {}
    for code in np.unique(actual):
        mine = actual == code
        recalls[int(code)] = Measured(float((predicted[mine] == code).mean()), int(mine.sum()))
    return Measured(float((actual == predicted).mean()), len(actual)), recalls


def one_seed(seed: int, params: dict[str, Any]) -> list[dict[str, Any]]:
    base = products(PRODUCTION_ROWS, 1000 + seed)
    train, frozen = train_test_split(base, test_size=0.1, stratify=base["prdtypecode"], random_state=seed)
    production = fit(train, params)
    frozen_production = predict(production, frozen)
    expected, recalls = expected_metrics(frozen["prdtypecode"].to_numpy(), frozen_production)
    clean = shifted_batch(5000 + seed, PRODUCTION_ROWS)
    held = is_held_out(clean.index)
    rows = []
    for scenario in SCENARIOS:
        batch = poisoned(clean, scenario, seed)
        screen = screen_batch(production, batch, expected, recalls)
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
                "outcome": outcome,
                "gate_alone_refuses": not decision.accepted,
                "agreement": screen["agreement"],
                "expected": screen["expected"],
                "flagged": [f"{c['class']}<-{c['predicted_as']}" for c in screen["classes"]],
                "slices": [(s.delta, s.low, s.high) for s in decision.slices],
            }
        )
    return rows


def report(rows: list[dict[str, Any]], seeds: int) -> str:
    """Two tables, narrow enough for the docs' text column: the decisions, then the gate's intervals."""
    decisions = [
        "| scenario | screen quarantined | gate refused | accepted | gate alone refuses | agreement (expected) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    intervals = [
        "| scenario | frozen ΔF1 [95 % interval] | batch held-out ΔF1 [95 % interval] |",
        "|---|---|---|",
    ]
    for scenario in SCENARIOS:
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
    head = (
        f"{seeds} seeds; production {PRODUCTION_ROWS} demo products (90 % train, 10 % frozen), batch {BATCH_ROWS} "
        f"products of {len(SHIFTED_CLASSES)} classes; ΔF1: candidate minus production on the gate's slices, "
        "median over the seeds of the change and of its interval"
    )
    return "\n".join([head, "", *decisions, "", *intervals])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--verbose", action="store_true", help="one line per seed and scenario")
    args = parser.parse_args(argv)
    params = {section: read_params("params.yaml", section) for section in ("featurize", "model")}
    start, rows = time.perf_counter(), []
    for seed in range(args.seeds):
        rows += one_seed(seed, params)
        if args.verbose:
            for row in rows[-len(SCENARIOS) :]:
                print({k: v for k, v in row.items() if k != "slices"}, flush=True)
    print(report(rows, args.seeds))
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
