"""The label screen's statistics: binomial tests of agreement against what production measured, per
batch and per given label, and confident learning's per-row label issues. monitoring/label_screen.py
says what each check is for and how they combine.

Production's accuracy and recalls were measured on a test split, per class often a few dozen products
(a recall of 1.0 on 5 would make any disagreement impossible): p-values are taken against the lower
95 % bound (MEASURED) of what was measured, effects against the measured value itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from mlops_rakuten.monitoring.significance import Result, holm

# False quarantines of clean batches at most 1 in 1,000 from chance alone (the effect minimum cuts
# them further); a shuffled batch of 50 rows already reaches p < 1e-20.
ALPHA = 0.001
EFFECT = 0.15
MEASURED = 0.95
MIN_CLASS_ROWS = 10  # under 10 rows a class's share moves 10 points per row: nothing to prove
BINOMIAL = "binomial (one-sided, less)"


@dataclass(frozen=True)
class Measured:
    """A share production reached on ``n`` test products (n = 0: known exactly, a value given by hand)."""

    share: float
    n: int = 0

    @property
    def bound(self) -> float:
        return lower_bound(self.share, self.n) if self.n else self.share

    def within(self, confidence: float) -> tuple[float, float]:
        """(expected, bound for the p-value), neither above production's own confidence on the products."""
        return min(self.share, confidence), min(self.bound, confidence)


def measured(value: float | Measured) -> Measured:
    return value if isinstance(value, Measured) else Measured(float(value))


def binomial_less(hits: int, n: int, expected: float) -> float:
    """P(X <= hits) for X ~ Binomial(n, expected): how unlikely so few agreements are by chance."""
    if n == 0:
        return 1.0
    return float(stats.binomtest(hits, n, min(max(expected, 0.0), 1.0), alternative="less").pvalue)


def fails(p_value: float, drop: float, alpha: float = ALPHA, effect: float = EFFECT) -> bool:
    """The decision of checks 1 and 2: significant (p at most alpha) and large (drop at least effect)."""
    return p_value <= alpha and drop >= effect


def class_results(
    labels: np.ndarray,
    predicted: np.ndarray,
    recalls: dict[int, Any],
    effect: float = EFFECT,
    min_rows: int = MIN_CLASS_ROWS,
    confidence: np.ndarray | None = None,
) -> list[Result]:
    """Per given label with ``min_rows`` rows and a known recall: the binomial test of its agreement
    (``confidence``: production's top-1 score per row, which caps what is expected)."""
    confidence = np.ones(len(labels)) if confidence is None else confidence
    results = []
    for code in np.unique(labels):
        mine = labels == code
        n, given = int(mine.sum()), recalls.get(int(code))
        if n < min_rows or given is None:
            continue
        expected, bound = measured(given).within(float(confidence[mine].mean()))
        hits = int((predicted[mine] == code).sum())
        share = hits / n
        p_value = binomial_less(hits, n, bound)
        results.append(Result(str(int(code)), BINOMIAL, hits, expected - share, p_value, share, expected, effect))
    return results


def flagged_classes(
    labels: np.ndarray,
    predicted: np.ndarray,
    recalls: dict[int, Any],
    alpha: float = ALPHA,
    effect: float = EFFECT,
    min_rows: int = MIN_CLASS_ROWS,
    confidence: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """The given labels whose agreement is significantly (Holm) and largely below production's recall."""
    flagged = []
    for result in holm(class_results(labels, predicted, recalls, effect, min_rows, confidence), alpha):
        if not result.alert:
            continue
        code = int(result.signal)
        others = predicted[(labels == code) & (predicted != code)]
        values, counts = np.unique(others, return_counts=True)
        source = int(values[counts.argmax()]) if len(values) else None
        n = int((labels == code).sum())
        flagged.append(
            {
                "class": code,
                "rows": n,
                "agreement": round(result.window, 4),
                "recall": round(result.reference, 4),
                "p_value": result.p_value,
                "disagreeing": len(others),
                "predicted_as": source,
                "predicted_as_rows": int(counts.max()) if len(values) else 0,
            }
        )
    return flagged


def confident_thresholds(probs: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Per class column: mean probability of that class over the rows labelled with it (inf if none)."""
    thresholds = np.full(probs.shape[1], np.inf)
    for j in range(probs.shape[1]):
        mine = given == j
        if mine.any():
            thresholds[j] = probs[mine, j].mean()
    return thresholds


def label_issues(probs: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Per row: its label's probability is under that class's threshold while another class's reaches its own.

    ``given`` holds column indices of ``probs`` (-1: a label the model does not know, never an issue).
    """
    known = given >= 0
    thresholds = confident_thresholds(probs[known], given[known])
    above = probs >= thresholds  # n x classes: the classes each row confidently belongs to
    rows = np.arange(len(given))
    own = np.where(known, above[rows, given.clip(0)], True)
    others = above.sum(axis=1) - np.where(known, above[rows, given.clip(0)], 0)
    return known & ~own & (others > 0)


def lower_bound(share: float, n: int, confidence: float = MEASURED) -> float:
    """One-sided Clopper-Pearson lower bound of a share measured on ``n`` products."""
    hits = round(share * n)
    return float(stats.beta.ppf(1 - confidence, hits, n - hits + 1)) if hits > 0 else 0.0
