"""A multi-class linear SVM fitted one class at a time, the classes shared out over processes.

Each of the 27 one-vs-rest problems is an independent binary problem: class k
against the rest, class k's rows weighted like ``class_weight`` weights them
in scikit-learn's multi-class LinearSVC (the others keep weight 1). The
matrix is prepared once, then forked processes (which share it, copy on
write) solve their share of the classes with ``model.solver``:

- ``newton``: LinearSVC's objective solved in the primal (mlops_rakuten.core.newton_svm);
- ``liblinear``: scikit-learn's LinearSVC with liblinear's dual solver, reseeded
  with ``model.seed`` for every class.

The result is an ordinary fitted ``LinearSVC`` (coef_, intercept_, classes_) whose
get_params() say how it was fitted (``dual=False`` for newton, the primal problem), so predict, decision_function and the served model are unchanged. The rows
are put back in class order and no solver depends on the scheduling, so the
model is byte-identical for any number of processes.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.svm import LinearSVC
from sklearn.utils.class_weight import compute_class_weight
from threadpoolctl import threadpool_limits

from mlops_rakuten.core import newton_svm
from mlops_rakuten.core.errors import InputError

BinaryFits = tuple[np.ndarray, np.ndarray, np.ndarray]  # coef rows, intercepts, iterations

_SHARED: dict[str, Any] = {}  # set before forking: the children read the matrix without a copy


def _classifier(params: dict[str, Any], class_weight: Any) -> LinearSVC:
    """The estimator as it was fitted, so that get_params() tells the truth.

    liblinear: its dual solver, seeded. newton: the primal problem (``dual=False``, the same
    squared-hinge objective and stopping rule as liblinear's primal solver); it uses no seed.
    """
    if params["solver"] == "newton":
        return LinearSVC(
            C=params["C"],
            class_weight=class_weight,
            dual=False,
            tol=params["tol"],
            max_iter=params["max_iter"],
            random_state=None,
        )
    return LinearSVC(
        C=params["C"],
        class_weight=class_weight,
        dual=True,
        tol=params["tol"],
        max_iter=params["max_iter"],
        random_state=params["seed"],
    )


def fit_binaries(
    rows: Any, y: np.ndarray, labels: np.ndarray, weights: np.ndarray, params: dict[str, Any]
) -> BinaryFits:
    """Fit label-vs-rest for each of ``labels`` on prepared ``rows``.

    ``weights`` holds, per label, the class weights of its rows and of the rest.
    """
    n_features = rows.shape[1] - 1 if params["solver"] == "newton" else rows.shape[1]
    coef = np.empty((len(labels), n_features))
    intercept, iterations = np.empty(len(labels)), np.empty(len(labels), dtype=np.int64)
    with threadpool_limits(limits=1):  # BLAS sums in a fixed order, whatever the machine
        for row, (label, (weight, rest_weight)) in enumerate(zip(labels, weights, strict=True)):
            positive = y == label
            if params["solver"] == "newton":
                cost = params["C"] * np.where(positive, float(weight), float(rest_weight))
                coef[row], intercept[row], iterations[row] = newton_svm.fit_binary(
                    rows, positive, cost, params["tol"], params["max_iter"]
                )
            else:
                binary = _classifier(params, {1: float(weight), 0: float(rest_weight)})
                binary.fit(rows, positive.astype(np.int8))
                coef[row], intercept[row], iterations[row] = binary.coef_[0], binary.intercept_[0], binary.n_iter_
    return coef, intercept, iterations


def _fit_share(share: np.ndarray) -> BinaryFits:
    rows, y, labels, weights, params = _SHARED["problem"]
    return fit_binaries(rows, y, labels[share], weights[share], params)


def fit_linear_svc(x: sparse.spmatrix, y: np.ndarray, params: dict[str, Any], n_jobs: int = 1) -> LinearSVC:
    """A fitted multi-class LinearSVC, its one-vs-rest problems solved in ``n_jobs`` processes."""
    classes = np.unique(y)
    if len(classes) < 2:
        raise InputError(
            f"all {len(y)} training rows are of class {classes[0] if len(classes) else 'none'}: "
            f"a classifier needs rows of at least two classes"
        )
    if params["class_weight"] == "balanced":
        class_weights = compute_class_weight("balanced", classes=classes, y=y)
    else:
        class_weights = np.ones(len(classes))
    if len(classes) == 2:  # one problem, the second class against the first, as scikit-learn fits it
        labels, weights = classes[1:], class_weights[None, ::-1]
    else:
        labels, weights = classes, np.column_stack([class_weights, np.ones(len(classes))])
    rows = newton_svm.prepare(x) if params["solver"] == "newton" else sparse.csr_matrix(x, dtype=np.float64)
    _SHARED["problem"] = (rows, y, labels, weights, params)
    try:
        if n_jobs == 1:
            fitted = [_fit_share(np.arange(len(labels)))]
        else:  # one class per task, handed to whichever process is free: the costs differ a lot
            with multiprocessing.get_context("fork").Pool(min(n_jobs, len(labels))) as pool:
                fitted = pool.map(_fit_share, [np.array([k]) for k in range(len(labels))], chunksize=1)
    finally:
        _SHARED.clear()
    coef = np.vstack([share_coef for share_coef, _, _ in fitted])
    intercept = np.concatenate([share_intercept for _, share_intercept, _ in fitted])
    iterations = np.concatenate([share_iterations for _, _, share_iterations in fitted])
    model = _classifier(params, params["class_weight"])
    model.classes_, model.coef_, model.intercept_ = classes, coef, intercept
    model.n_features_in_, model.n_iter_ = x.shape[1], int(iterations.max())
    return model
