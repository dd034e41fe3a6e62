"""Classification scores from a confusion matrix, in numpy alone.

scikit-learn's ``accuracy_score``, ``f1_score`` and ``precision_recall_fscore_support``
(``zero_division=0``) give the same floats, bit for bit (tests/test_scores.py); these
are written again so that `evaluate` never imports scikit-learn (about 1.2 s of
an experiment's run). The sums and divisions follow scikit-learn's order: a float
summed in another order can differ in its last bit, and so change metrics.json.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlops_rakuten.core.categories import CODES


def confusion_counts(actual: np.ndarray, predicted: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """counts[i, j]: rows of class labels[i] predicted as labels[j] (scikit-learn's confusion_matrix).

    Rows whose codes are not in ``labels`` are left out."""
    index = {label: position for position, label in enumerate(labels)}
    cells = [
        (index[a], index[p])
        for a, p in zip(actual.tolist(), predicted.tolist(), strict=True)
        if a in index and p in index
    ]
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    if cells:
        np.add.at(counts, tuple(np.array(cells).T), 1)
    return counts


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (``zero_division=0``)."""
    zero = denominator == 0
    result = np.asarray(numerator, dtype=np.float64) / np.where(zero, 1, denominator).astype(np.float64)
    result[zero] = 0.0
    return result


def precision_recall_f1(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per label of ``counts``: precision, recall, F1 and support (rows actually of the label)."""
    hits = np.diagonal(counts).copy()
    predicted = counts.sum(axis=0)
    support = counts.sum(axis=1)
    f1 = _divide(2.0 * hits.astype(np.float64), 1.0 * support.astype(np.float64) + predicted.astype(np.float64))
    return _divide(hits, predicted), _divide(hits, support), f1, support


def f1_averages(counts: np.ndarray) -> tuple[float, float]:
    """F1 averaged over the labels of ``counts``: weighted by support, and plain (macro)."""
    _, _, f1, support = precision_recall_f1(counts)
    # All supports 0 (every actual code outside the labels): scikit-learn falls back on the plain mean.
    weighted = np.average(f1, weights=support) if support.any() else np.mean(f1)
    return float(weighted), float(np.mean(f1))


def headline_metrics(actual: np.ndarray, predicted: np.ndarray, n_train: int) -> dict[str, float | int]:
    """Accuracy, weighted and macro F1 over the classes in ``actual`` or ``predicted``, and the row counts."""
    labels = np.unique(np.concatenate([actual, predicted])).tolist()
    weighted, macro = f1_averages(confusion_counts(actual, predicted, labels))
    return {
        "accuracy": round(float(np.average(actual == predicted)), 6),
        "f1_weighted": round(weighted, 6),
        "f1_macro": round(macro, 6),
        "n_train": int(n_train),
        "n_test": int(len(actual)),
    }


def class_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, dict[str, float | int]]:
    """Per class code found in ``actual`` or ``predicted``: precision, recall, F1 and support."""
    present = set(actual.tolist()) | set(predicted.tolist())
    labels = [code for code in CODES if code in present]
    precision, recall, f1, support = precision_recall_f1(confusion_counts(actual, predicted, labels))
    return {
        str(code): {
            "precision": round(float(p), 6),
            "recall": round(float(r), 6),
            "f1": round(float(f), 6),
            "support": int(s),
        }
        for code, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    }
