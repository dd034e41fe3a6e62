"""LinearSVC fitted one class at a time, the classes shared out over processes.

scikit-learn's LinearSVC solves its one-vs-rest problems one after the other
on one core. Each of them is an independent binary problem: class k against
the rest, class k's rows weighted like ``class_weight`` weights them in the
multi-class fit (the others keep weight 1, as liblinear does). Here every
process converts the matrix to float64 CSR once, then fits its share of the
classes; the result is an ordinary fitted ``LinearSVC`` (coef_, intercept_,
classes_), so predict, decision_function and the served model are unchanged.

Reproducible whatever the scheduling: every binary fit reseeds liblinear with
the same seed, and the coefficients are put back in class order, so the model
is byte-identical for any number of processes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from joblib import Parallel, delayed
from scipy import sparse
from sklearn.svm import LinearSVC
from sklearn.utils.class_weight import compute_class_weight

BinaryFits = tuple[np.ndarray, np.ndarray, np.ndarray]  # coef rows, intercepts, iterations


def _classifier(params: dict[str, Any], class_weight: Any) -> LinearSVC:
    return LinearSVC(C=params["C"], class_weight=class_weight, dual=params["dual"], tol=params["tol"],
                     max_iter=params["max_iter"], random_state=params["seed"])


def fit_binaries(x: sparse.spmatrix, y: np.ndarray, classes: np.ndarray, weights: np.ndarray,
                 params: dict[str, Any]) -> BinaryFits:
    """Fit class-vs-rest for each of ``classes`` (with its weight), converting ``x`` once."""
    x = sparse.csr_matrix(x, dtype=np.float64)
    coef = np.empty((len(classes), x.shape[1]))
    intercept, iterations = np.empty(len(classes)), np.empty(len(classes), dtype=np.int64)
    for row, (label, weight) in enumerate(zip(classes, weights)):
        binary = _classifier(params, {1: float(weight), 0: 1.0}).fit(x, (y == label).astype(np.int8))
        coef[row], intercept[row], iterations[row] = binary.coef_[0], binary.intercept_[0], binary.n_iter_
    return coef, intercept, iterations


def fit_linear_svc(x: sparse.spmatrix, y: np.ndarray, params: dict[str, Any], n_jobs: int = 1) -> LinearSVC:
    """A fitted multi-class LinearSVC, its one-vs-rest problems solved in ``n_jobs`` processes."""
    classes = np.unique(y)
    if len(classes) < 3:  # one binary problem: nothing to share out
        return _classifier(params, params["class_weight"]).fit(x, y)
    if params["class_weight"] == "balanced":
        weights = compute_class_weight("balanced", classes=classes, y=y)
    else:
        weights = np.ones(len(classes))
    # Round-robin shares: neighbouring codes are not systematically easier or harder.
    shares = [np.arange(first, len(classes), n_jobs) for first in range(min(n_jobs, len(classes)))]
    fitted = Parallel(n_jobs=len(shares))(
        delayed(fit_binaries)(x, y, classes[share], weights[share], params) for share in shares
    )
    coef = np.empty((len(classes), x.shape[1]))
    intercept, iterations = np.empty(len(classes)), np.empty(len(classes), dtype=np.int64)
    for share, (share_coef, share_intercept, share_iterations) in zip(shares, fitted):
        coef[share], intercept[share], iterations[share] = share_coef, share_intercept, share_iterations
    model = _classifier(params, params["class_weight"])
    model.classes_, model.coef_, model.intercept_ = classes, coef, intercept
    model.n_features_in_, model.n_iter_ = x.shape[1], int(iterations.max())
    return model
