"""The label screen: does an uploaded batch's labels agree with production as much as they should?

Four checks, all on production's predictions of the batch's own products (rows with some text); the
statistics are in monitoring/label_statistics.py and monitoring/label_pairs.py, this module combines
them and reads what production measured from a project.

1. **Agreement.** The share of rows whose label is production's top-1 class, by a one-sided exact
   binomial test. Expected: production's accuracy (metrics/metrics.json), capped by production's own
   confidence on these products (the mean top-1 score: under calibration, the agreement correct labels
   would reach). The cap is what lets a genuine source production does not know through: its products
   get low scores whatever their labels, while poisoned labels leave the scores as they are. Measured
   with the shipped 20,000-row demo model: the pool partner of tests/test_retrain.py (600 terse
   listings of unknown product lines, all 2583) agrees 38 to 54 % against a confidence of 42 to 46 %,
   the genuine challenge sample 45 % against 49 % (its accuracy: 86 %); shuffled demo batches agree
   5 % at a confidence of 93 %. The batch fails when p <= ALPHA **and** agreement is at least EFFECT
   below expected. The effect minimum keeps a large clean batch from failing on a harmless difference
   (with 1,000 rows, 4 points is significant) and absorbs the score's miscalibration: clean demo
   batches from another draw of the generator lose 0 to 5 points against 86 %; shuffled labels lose
   60 to 80 (`make bench-gate`).
2. **One class.** Per given label L with MIN_CLASS_ROWS rows: the share of rows labelled L that
   production predicts as L, against production's recall of L (metrics/classes.json; capped by its mean
   top-1 score on those rows), Holm's correction over the classes at ALPHA, same EFFECT minimum. A
   flagged class is named with the class most of its disagreeing rows were predicted as.
3. **Pairs of classes** (label_pairs.py). A relabelling of 30 % of class A as B barely moves overall
   agreement, and in a batch of all 27 classes B's own agreement test (2) has too few rows to see it
   reliably; the moved rows show sharper in one cell: labelled B, confidently predicted A, against how
   often production predicted A for real B products on its test split (plots/predictions.csv). Fisher
   exact test with Tarone's correction at PAIR_ALPHA, effect minimum PAIR_EFFECT; a failing pair names both
   classes. Skipped (and said) when production's test predictions are not there.
4. **Per-row label issues**, the core of confident learning (Northcutt et al. 2021, cleanlab's
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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mlops_rakuten.core.categories import category_label
from mlops_rakuten.core.paths import CLASS_METRICS, METRICS
from mlops_rakuten.core.predict import decision_values, has_text, load_model, softmax_scores
from mlops_rakuten.monitoring.label_pairs import (
    PAIR_ALPHA,
    PAIR_EFFECT,
    TEST_PREDICTIONS,
    Confusion,
    flagged_pairs,
    parse_predictions,
)
from mlops_rakuten.monitoring.label_statistics import (
    ALPHA,
    EFFECT,
    MIN_CLASS_ROWS,
    Measured,
    binomial_less,
    fails,
    flagged_classes,
    label_issues,
    measured,
)

SHOWN_ROWS = 5  # first label-issue rows named in the result


def screen_batch(
    model: Pipeline,
    products: pd.DataFrame,
    expected: float | Measured,
    recalls: dict[int, Any],
    confusion: Confusion | None = None,
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
    return judge(labels, predicted, probs, classes, expected, recalls, list(usable.index), alpha, effect, confusion)


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
    confusion: Confusion | None = None,
) -> dict[str, Any]:
    """The four checks on production's predictions (``probs``: n x ``classes``, rows summing to 1);
    ``confusion``: production's test split (None: the pair test is skipped)."""
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
    pairs, family = (
        flagged_pairs(labels, predicted, top1, confusion, PAIR_ALPHA, PAIR_EFFECT, MIN_CLASS_ROWS)
        if confusion is not None
        else ([], 0)
    )
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
    why += [_pair_reason(f) for f in pairs] + [_class_reason(f) for f in flagged]
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
        "pairs": pairs,
        "pair_family": family,  # Tarone's K (0: no test predictions, the pair test was skipped)
        "pair_alpha": PAIR_ALPHA,
        "label_issues": count,
        "label_issue_share": round(count / n, 4),
        "label_issue_rows": issue_rows,
    }


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _pair_reason(flag: dict[str, Any]) -> str:
    return (
        f"{flag['rows']} of the {flag['of']} rows labelled {category_label(flag['given'])} ({flag['share']:.0%}) "
        f"confidently predicted as {category_label(flag['predicted_as'])}, expected {flag['expected']:.0%} "
        f"({flag['test_rows']} test products; Fisher p = {flag['p_value']:.1e})"
    )


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


def production_metrics(project: Path) -> tuple[Measured, dict[int, Measured], Confusion | None] | None:
    """Production's accuracy, per-class recall and test-split confusion as the evaluate stage wrote them
    (None: no metrics; a None confusion: no test predictions, the pair test is skipped)."""
    overall, per_class, tested = project / METRICS, project / CLASS_METRICS, project / TEST_PREDICTIONS
    if not (overall.is_file() and per_class.is_file()):
        return None
    expected, recalls = parse_metrics(overall.read_text(encoding="utf-8"), per_class.read_text(encoding="utf-8"))
    confusion = parse_predictions(tested.read_text(encoding="utf-8")) if tested.is_file() else None
    return expected, recalls, confusion


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
