"""The label screen: does an uploaded batch's labels agree with production as much as they should?

Three checks, all on production's predictions of the batch's own products (rows with some text):

1. **Agreement.** The share of rows whose label is production's top-1 class, by a one-sided exact
   binomial test. Expected: production's accuracy (metrics/metrics.json), capped by production's own
   confidence on these products (the mean top-1 score: under calibration, the agreement correct labels
   would reach). The cap is what lets a genuine source production does not know through: its products
   get low scores whatever their labels, while poisoned labels leave the scores as they are. Measured
   with the shipped 20,000-row demo model: the pool partner of tests/test_retrain.py (600 terse
   listings of unknown product lines, all 2583) agrees 38 to 54 % against a confidence of 42 to 46 %,
   the genuine challenge sample 45 % against 49 % (its accuracy: 86 %); shuffled demo batches agree
   5 % at a confidence of 93 %. The p-value is taken against the lower 95 % bound of the accuracy
   given the test products that measured it (MEASURED). The batch fails when p <= ALPHA **and**
   agreement is at least EFFECT below expected. The effect minimum keeps a large clean batch from
   failing on a harmless difference (with 1,000 rows, 4 points is significant) and absorbs the score's
   miscalibration: clean demo batches from another draw of the generator (five classes, or all 27)
   lose 0 to 5 points against 86 %; shuffled labels lose 60 to 80 (`make bench-gate`).
2. **Class-targeted attack.** A relabelling of 30 % of one class into another barely moves overall
   agreement. Per given label L with MIN_CLASS_ROWS rows: the share of rows labelled L that production
   predicts as L, against production's recall of L (metrics/classes.json; capped by its mean top-1
   score on those rows, which relabelled rows of a class it knows leave high), one-sided binomial, Holm's
   correction over the classes at ALPHA (monitoring/significance.py's), same EFFECT minimum. A flagged
   class is named with the class most of its disagreeing rows were predicted as: where they came from.
3. **Per-row label issues**, the core of confident learning (Northcutt et al. 2021, cleanlab's
   ``find_label_issues``): production's scores (core/predict.py's softmax) as probabilities; per class
   j a threshold t_j = mean p_j over the rows labelled j; a row is an issue when its label's p is
   under its threshold while another class's p reaches that class's threshold. Reported (count, share,
   first rows) as supporting evidence only: it rests on the same production scores as check 1 and has
   no false-positive rate of its own (a clean batch flags about production's error rate), so alone it
   never quarantines.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.pipeline import Pipeline

from mlops_rakuten.core.categories import category_label
from mlops_rakuten.core.paths import CLASS_METRICS, METRICS
from mlops_rakuten.core.predict import decision_values, has_text, load_model, softmax_scores
from mlops_rakuten.monitoring.significance import Result, holm

# False quarantines of clean batches at most 1 in 1,000 from chance alone (the effect minimum cuts
# them further); a shuffled batch of 50 rows already reaches p < 1e-20.
ALPHA = 0.001
EFFECT = 0.15
# Production's accuracy and recalls were measured on a test split, per class often a few dozen products
# (a recall of 1.0 on 5 would make any disagreement impossible): the p-value is taken against the lower
# 95 % bound of what was measured, the effect against the measured value itself.
MEASURED = 0.95
MIN_CLASS_ROWS = 10  # under 10 rows a class's share moves 10 points per row: nothing to prove
SHOWN_ROWS = 5  # first label-issue rows named in the result
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


def screen_batch(
    model: Pipeline,
    products: pd.DataFrame,
    expected: float | Measured,
    recalls: dict[int, Any],
    alpha: float = ALPHA,
    effect: float = EFFECT,
) -> dict[str, Any]:
    """The screen of one batch (designation, description, prdtypecode): a JSON-able result."""
    usable = products[has_text(products)]
    if usable.empty:
        return {"passed": True, "reason": "no row with text to screen", "rows": 0}
    labels = usable["prdtypecode"].to_numpy(dtype=np.int64)
    classes = np.asarray(model.classes_).astype(np.int64)
    probs = softmax_scores(decision_values(model, usable))
    predicted = classes[probs.argmax(axis=1)]
    return judge(labels, predicted, probs, classes, expected, recalls, list(usable.index), alpha, effect)


def judge(
    labels: np.ndarray,
    predicted: np.ndarray,
    probs: np.ndarray,
    classes: np.ndarray,
    expected: float | Measured,
    recalls: dict[int, Any],
    rows: list | None = None,
    alpha: float = ALPHA,
    effect: float = EFFECT,
) -> dict[str, Any]:
    """The three checks on production's predictions (``probs``: n x ``classes``, rows summing to 1)."""
    n = len(labels)
    hits = int((labels == predicted).sum())
    agreement = hits / n if n else math.nan
    top1 = probs.max(axis=1)
    confidence = float(top1.mean()) if n else 1.0
    accuracy = measured(expected)
    target, bound = accuracy.within(confidence)
    p_value = binomial_less(hits, n, bound)
    overall = fails(p_value, target - agreement, alpha, effect)
    flagged = flagged_classes(labels, predicted, recalls, alpha, effect, MIN_CLASS_ROWS, top1)
    column = {int(c): i for i, c in enumerate(classes)}
    issues = label_issues(probs, np.array([column.get(int(code), -1) for code in labels], dtype=np.int64))
    rows = rows if rows is not None else list(range(n))
    issue_rows = [_plain(rows[i]) for i in np.flatnonzero(issues)[:SHOWN_ROWS]]
    why = []
    if overall:
        why.append(
            f"labels agree with production on {agreement:.0%} of {n} rows, expected {target:.0%} "
            f"(binomial p = {p_value:.1e})"
        )
    why += [_class_reason(f) for f in flagged]
    count = int(issues.sum())
    evidence = f"{count} rows ({count / n:.0%}) look mislabelled (confident learning)"
    passed = not why
    agrees = f"labels agree with production on {agreement:.0%} of {n} rows, expected {target:.0%}"
    reason = "; ".join(why or [agrees])
    reason += f"; {evidence}"
    return {
        "passed": passed,
        "reason": reason,
        "rows": n,
        "agreement": round(agreement, 4),
        "expected": round(target, 4),
        "expected_bound": round(bound, 4),
        "accuracy": round(accuracy.share, 4),
        "confidence": round(confidence, 4),
        "p_value": p_value,
        "alpha": alpha,
        "effect": effect,
        "classes": flagged,
        "label_issues": count,
        "label_issue_share": round(count / n, 4),
        "label_issue_rows": issue_rows,
    }


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _class_reason(flag: dict[str, Any]) -> str:
    moved = (
        f"; {flag['predicted_as_rows']} of the {flag['disagreeing']} others predicted as "
        f"{category_label(flag['predicted_as'])}"
        if flag["predicted_as"] is not None
        else ""
    )
    return (
        f"class {category_label(flag['class'])}: production agrees with {flag['agreement']:.0%} of its "
        f"{flag['rows']} rows, expected {flag['recall']:.0%}{moved}"
    )


def production_metrics(project: Path) -> tuple[Measured, dict[int, Measured]] | None:
    """Production's accuracy and per-class recall as the evaluate stage wrote them, or None."""
    overall, per_class = project / METRICS, project / CLASS_METRICS
    if not (overall.is_file() and per_class.is_file()):
        return None
    return parse_metrics(overall.read_text(encoding="utf-8"), per_class.read_text(encoding="utf-8"))


def lower_bound(share: float, n: int, confidence: float = MEASURED) -> float:
    """One-sided Clopper-Pearson lower bound of a share measured on ``n`` products."""
    hits = round(share * n)
    return float(stats.beta.ppf(1 - confidence, hits, n - hits + 1)) if hits > 0 else 0.0


def parse_metrics(metrics: str, classes: str) -> tuple[Measured, dict[int, Measured]]:
    """Production's accuracy and per-class recall (classes with support) from the evaluate stage's two
    JSON files, each with how many test products measured it."""
    overall, per_class = json.loads(metrics), json.loads(classes)
    recalls = {
        int(code): Measured(float(c["recall"]), int(c["support"])) for code, c in per_class.items() if c.get("support")
    }
    return Measured(float(overall["accuracy"]), int(overall.get("n_test", 0))), recalls


def model_file(path: Path) -> Callable[[], Pipeline | None]:
    """Production from a file: None when there is none (a project whose pipeline never ran)."""
    return lambda: load_model(path) if path.is_file() else None


def project_screen(model: Callable[[], Pipeline | None]) -> Callable[[pd.DataFrame, Path], dict[str, Any]]:
    """A screen for ops.ingest: ``model()`` gives production (None: no model), the project its metrics."""

    def screen(products: pd.DataFrame, project: Path) -> dict[str, Any]:
        pipeline = model()
        if pipeline is None:
            return {"skipped": "no model"}
        metrics = production_metrics(project)
        if metrics is None:
            return {"skipped": f"no {METRICS} or {CLASS_METRICS} for production's expected accuracy"}
        return screen_batch(pipeline, products, *metrics)

    return screen
