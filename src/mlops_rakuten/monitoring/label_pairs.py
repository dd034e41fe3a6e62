"""The label screen's pair test: rows of one given label that production confidently puts in one other class.

A relabelling of part of class A as B shows first in one cell of the batch's confusion: rows labelled
B that production predicts as A, with the confidence it has on A's real products. Per pair (given B,
predicted A) the batch's count of such rows among its n_B rows labelled B is compared with how often
production predicted A for real B products on its own test split (plots/predictions.csv, the evaluate
stage's: M of N), by a one-sided Fisher exact test (hypergeometric, conditional on the pair's total
k + M). Both counts are samples: the test split measured a rate of a few percent on about a hundred
products, which a binomial against a fixed rate would treat as known.

Only rows predicted with a top-1 score of at least CONFIDENT count in the batch: relabelled products of
a class production knows keep their high score, while a genuine source production does not know gives
low scores whatever the labels (the pool partner of tests/test_retrain.py) and is not quarantined for
that. The test split's counts include every score, so the restriction only makes the test stricter.

Some 27 x 26 pairs make a large family, but most can never reach significance: a pair seen k + M = 2
times in all has a smallest attainable p-value of a few percent. Tarone's correction (1990) counts
only the K pairs whose smallest attainable p-value is at most alpha / K, so the family-wise rate
stays at alpha while K is a handful: a 30 % relabelling of a 36-row class in a 300-row batch (p 1e-4
to 1e-8 in the demo) is caught, where Bonferroni over all ~340 pairs of such a batch would need
alpha / 340. A pair fails when its p is at most alpha / K and the batch's share is at least
PAIR_EFFECT above the test split's.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import StringIO
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mlops_rakuten.core.errors import InputError

CONFIDENT = 0.5  # a top-1 score under this: production more likely wrong than right
# A false quarantine costs a person a look; a missed targeted relabelling costs a model trained on it.
# Measured on demo batches (`make bench-gate`): at 0.01, 30 % of a 36-row class in a 300-row batch of
# 27 classes is caught in 120 of 120 batches, at 0.001 in 117.
PAIR_ALPHA = 0.01
# 30 % of a class moved into one of similar size fills about a quarter of that class's rows (0.3 / 1.3);
# 30 % of 2583's 36 demo rows moved into 1280's 17, a third. At 0.15, one clean five-class demo batch of
# 20 failed (6 of 39 rows labelled 10 confidently predicted 40, against 0 of 73 test products).
PAIR_EFFECT = 0.2
TEST_PREDICTIONS = "plots/predictions.csv"  # the evaluate stage's: actual,predicted,... per test product

Confusion = dict[int, dict[int, int]]  # production's test split: {actual class: {predicted class: count}}


@dataclass(frozen=True)
class Pair:
    """Rows labelled ``given`` predicted ``predicted``: ``k`` of ``n`` in the batch, ``m`` of ``big_n`` in
    production's test split."""

    given: int
    predicted: int
    k: int
    n: int
    m: int
    big_n: int

    @property
    def share(self) -> float:
        return self.k / self.n

    @property
    def expected(self) -> float:
        return self.m / self.big_n

    def p_value(self) -> float:
        """P(at least k of the pair's k + M rows fall in the batch) when both share one rate."""
        return float(stats.hypergeom.sf(self.k - 1, self.n + self.big_n, self.k + self.m, self.n))

    def smallest_p(self) -> float:
        """The p-value had every one of the pair's k + M rows been in the batch (1: none at all)."""
        most = min(self.k + self.m, self.n)
        return float(stats.hypergeom.sf(most - 1, self.n + self.big_n, self.k + self.m, self.n)) if most else 1.0


def confusion(actual: np.ndarray, predicted: np.ndarray) -> Confusion:
    """Production's test split as {actual class: {predicted class: count}} (all its products)."""
    table = pd.crosstab(pd.Series(actual, name="actual"), pd.Series(predicted, name="predicted"))
    return {int(a): {int(p): int(c) for p, c in row.items() if c} for a, row in table.iterrows()}


def parse_predictions(text: str, name: str = TEST_PREDICTIONS) -> Confusion:
    """The evaluate stage's test predictions (CSV with ``actual`` and ``predicted`` codes) as a confusion."""
    frame = pd.read_csv(StringIO(text))
    missing = {"actual", "predicted"} - set(frame.columns)
    if missing:
        raise InputError(f"{name}: no column {', '.join(sorted(missing))}")
    return confusion(frame["actual"].to_numpy(dtype=np.int64), frame["predicted"].to_numpy(dtype=np.int64))


def pairs(labels: np.ndarray, predicted: np.ndarray, top1: np.ndarray, test: Confusion, min_rows: int) -> list[Pair]:
    """Every (given, predicted) pair whose given label has ``min_rows`` rows in the batch and products in
    production's test split; the batch counts only rows predicted with a score of CONFIDENT or more."""
    sure = top1 >= CONFIDENT
    classes = sorted({int(c) for row in test.values() for c in row} | {int(c) for c in np.unique(predicted)})
    found = []
    for given in np.unique(labels):
        mine, row = labels == given, test.get(int(given), {})
        n, big_n = int(mine.sum()), sum(row.values())
        if n < min_rows or big_n == 0:
            continue
        for other in classes:
            if other != given:
                k = int((mine & sure & (predicted == other)).sum())
                found.append(Pair(int(given), other, k, n, row.get(other, 0), big_n))
    return found


def tarone_family(smallest: list[float], alpha: float) -> int:
    """Tarone's K: the least K such that at most K pairs can reach p <= alpha / K (1 for none)."""
    ordered = np.sort(np.asarray(smallest, dtype=float))
    for size in range(1, len(ordered) + 1):
        if np.searchsorted(ordered, alpha / size, side="right") <= size:
            return size
    return max(len(ordered), 1)


def flagged_pairs(
    labels: np.ndarray,
    predicted: np.ndarray,
    top1: np.ndarray,
    test: Confusion,
    alpha: float,
    effect: float,
    min_rows: int,
) -> tuple[list[dict[str, Any]], int]:
    """The pairs significantly (Tarone) and largely over production's own confusion, most significant
    first, and the size K of the family they were judged in."""
    found = pairs(labels, predicted, top1, test, min_rows)
    family = tarone_family([p.smallest_p() for p in found], alpha)
    flagged = []
    for pair in found:
        if not pair.k or pair.share - pair.expected < effect:
            continue
        p_value = pair.p_value()
        if p_value <= alpha / family:
            flagged.append(
                {
                    "given": pair.given,
                    "predicted_as": pair.predicted,
                    "rows": pair.k,
                    "of": pair.n,
                    "share": round(pair.share, 4),
                    "expected": round(pair.expected, 4),
                    "test_rows": f"{pair.m} of {pair.big_n}",
                    "p_value": p_value,
                }
            )
    return sorted(flagged, key=lambda f: f["p_value"]), family
