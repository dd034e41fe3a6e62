"""core/scores.py gives scikit-learn's metrics bit for bit, without importing it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from mlops_rakuten.core.categories import CODES
from mlops_rakuten.core.scores import (
    class_metrics,
    confusion_counts,
    f1_averages,
    headline_metrics,
    precision_recall_f1,
)

CASES = {
    "27 classes, 8,000 rows": (27, 27, 8000, 0),
    "predicted classes never actual": (5, 9, 400, 1),
    "actual classes never predicted": (9, 4, 400, 2),
    "two classes": (2, 2, 50, 3),
    "one class": (1, 1, 20, 4),
}


def _labels(case: str) -> tuple[np.ndarray, np.ndarray]:
    actual_classes, predicted_classes, rows, seed = CASES[case]
    rng = np.random.default_rng(seed)
    actual = rng.choice(CODES[:actual_classes], rows)
    # Mostly right, as a model is: a share of rows keeps its class.
    predicted = np.where(rng.random(rows) < 0.7, actual, rng.choice(CODES[-predicted_classes:], rows))
    return actual, predicted


@pytest.mark.parametrize("case", CASES)
def test_headline_metrics_are_scikit_learns_floats(case: str):
    actual, predicted = _labels(case)
    metrics = headline_metrics(actual, predicted, n_train=7)
    assert metrics == {
        "accuracy": round(accuracy_score(actual, predicted), 6),
        "f1_weighted": round(f1_score(actual, predicted, average="weighted", zero_division=0), 6),
        "f1_macro": round(f1_score(actual, predicted, average="macro", zero_division=0), 6),
        "n_train": 7,
        "n_test": len(actual),
    }


@pytest.mark.parametrize("case", CASES)
def test_unrounded_scores_are_scikit_learns_bit_for_bit(case: str):
    actual, predicted = _labels(case)
    labels = np.unique(np.concatenate([actual, predicted])).tolist()
    counts = confusion_counts(actual, predicted, labels)
    theirs = precision_recall_fscore_support(actual, predicted, labels=labels, zero_division=0)
    for mine, reference in zip(precision_recall_f1(counts), theirs, strict=True):
        assert mine.tobytes() == np.asarray(reference, dtype=mine.dtype).tobytes()
    assert f1_averages(counts) == (
        f1_score(actual, predicted, average="weighted", zero_division=0),
        f1_score(actual, predicted, average="macro", zero_division=0),
    )


@pytest.mark.parametrize("case", CASES)
def test_class_metrics_are_scikit_learns(case: str):
    actual, predicted = _labels(case)
    per_class = class_metrics(actual, predicted)
    labels = [int(code) for code in per_class]
    assert labels == sorted(set(actual.tolist()) | set(predicted.tolist()))
    precision, recall, f1, support = precision_recall_fscore_support(actual, predicted, labels=labels, zero_division=0)
    for code, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True):
        assert per_class[str(code)] == {
            "precision": round(p, 6),
            "recall": round(r, 6),
            "f1": round(f, 6),
            "support": s,
        }


def test_confusion_counts_are_scikit_learns_and_leave_out_other_codes():
    actual, predicted = _labels("predicted classes never actual")
    labels = list(CODES[:5])  # the predicted-only codes are left out, as confusion_matrix does
    assert np.array_equal(
        confusion_counts(actual, predicted, labels), confusion_matrix(actual, predicted, labels=labels)
    )
    assert confusion_counts(actual[:0], predicted[:0], labels).sum() == 0
