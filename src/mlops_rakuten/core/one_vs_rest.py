"""A multi-class linear SVM: its one-vs-rest problems shared out over processes.

Each of the 27 one-vs-rest problems is an independent binary problem: class k
against the rest, class k's rows weighted like ``class_weight`` weights them
in scikit-learn's multi-class LinearSVC (the others keep weight 1). The
matrix is prepared once, then forked processes (which share it, copy on
write) solve their share of the classes with ``model.solver``:

- ``block``: LinearSVC's objective in the primal, all the classes of a process in one
  Newton solver whose matrix products take them as one dense block (mlops_rakuten.core.block_newton);
  each process gets every n_jobs-th class;
- ``newton``: the same objective and stopping rule, one class at a time, each started (at 20,000 rows
  and more) from its solution on every 8th row (mlops_rakuten.core.newton_svm);
- ``liblinear``: scikit-learn's LinearSVC with liblinear's dual solver, reseeded
  with ``model.seed`` for every class.

The result is an ordinary fitted ``LinearSVC`` (coef_, intercept_, classes_) whose
get_params() say how it was fitted (``dual=False`` for newton, the primal problem), so predict, decision_function and the served model are unchanged. The rows
are put back in class order and no solver depends on the scheduling, so the
model is byte-identical for any number of processes.
"""

from __future__ import annotations

import multiprocessing
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from mlops_rakuten.core import block_newton, newton_svm
from mlops_rakuten.core.errors import InputError

if TYPE_CHECKING:
    from sklearn.svm import LinearSVC

# coef rows, intercepts, iterations, and whether max_iter stopped the class short of model.tol (block only)
BinaryFits = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
PRIMAL = ("block", "newton")  # the solvers of this project: LinearSVC's primal problem, float32 rows

_SHARED: dict[str, Any] = {}  # set before forking: the children read the matrix without a copy


def _classifier(params: dict[str, Any], class_weight: Any) -> LinearSVC:
    """The estimator as it was fitted, so that get_params() tells the truth.

    liblinear: its dual solver, seeded. newton: the primal problem (``dual=False``, the same
    squared-hinge objective and stopping rule as liblinear's primal solver); it uses no seed.
    """
    from sklearn.svm import LinearSVC  # see fit_linear_svc: imported while the primal solvers run

    if params["solver"] in PRIMAL:
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
    rows: Any,
    y: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    params: dict[str, Any],
    coarse: sparse.csr_matrix | None = None,
    first_norms: np.ndarray | None = None,
) -> BinaryFits:
    """Fit label-vs-rest for each of ``labels`` on prepared ``rows``.

    ``weights`` holds, per label, the class weights of its rows and of the rest; ``coarse`` is
    ``newton_svm.coarse_rows(rows)``, the newton solver's start, and ``first_norms`` what the
    function of that name returns: each label's gradient norm at w = 0, which the solver's
    stopping rule compares with.
    """
    if params["solver"] == "block":
        return _fit_block(rows, y, labels, weights, params)
    n_features = rows.shape[1] - 1 if params["solver"] == "newton" else rows.shape[1]
    coef = np.empty((len(labels), n_features))
    intercept, iterations = np.empty(len(labels)), np.empty(len(labels), dtype=np.int64)
    with threadpool_limits(limits=1):  # BLAS sums in a fixed order, whatever the machine
        for row, (label, (weight, rest_weight)) in enumerate(zip(labels, weights, strict=True)):
            positive = y == label
            if params["solver"] == "newton":
                cost = params["C"] * np.where(positive, float(weight), float(rest_weight))
                coef[row], intercept[row], iterations[row] = newton_svm.fit_binary(
                    rows,
                    positive,
                    cost,
                    params["tol"],
                    params["max_iter"],
                    coarse,
                    None if first_norms is None else float(first_norms[row]),
                )
            else:
                binary = _classifier(params, {1: float(weight), 0: float(rest_weight)})
                binary.fit(rows, positive.astype(np.int8))
                coef[row], intercept[row], iterations[row] = binary.coef_[0], binary.intercept_[0], binary.n_iter_
    return coef, intercept, iterations, np.zeros(len(labels), dtype=bool)


def _fit_block(
    rows: sparse.csr_matrix, y: np.ndarray, labels: np.ndarray, weights: np.ndarray, params: dict[str, Any]
) -> BinaryFits:
    """All of ``labels`` in one block solver."""
    positive = y[None, :] == labels[:, None]
    cost = params["C"] * np.where(positive, weights[:, :1].astype(float), weights[:, 1:].astype(float))
    with threadpool_limits(limits=1):  # BLAS sums in a fixed order, whatever the machine
        return block_newton.fit_block(
            rows, positive, cost, params["tol"], params["max_iter"], names=[str(label) for label in labels]
        )


def _fit_share(share: np.ndarray) -> BinaryFits:
    rows, y, labels, weights, params, coarse, norms = _SHARED["problem"]
    return fit_binaries(rows, y, labels[share], weights[share], params, coarse, None if norms is None else norms[share])


def first_norms(
    rows: sparse.csr_matrix, y: np.ndarray, labels: np.ndarray, weights: np.ndarray, c: float
) -> np.ndarray:
    """‖gradient at w = 0‖ of every label's problem on prepared ``rows``, all from one pass over them.

    At w = 0 the gradient is −2 Xᵀ(cᵢ·yᵢ), and per label that is C·((weight + rest weight) × the sum of
    its rows − rest weight × the sum of all rows): one sparse product for the per-label sums (float32
    sums of TF-IDF values, exact to 1e-9 here) instead of a pass over the matrix per label.
    """
    mine = np.isin(y, labels)  # two classes: the first one is the "rest" of the only label
    member = sparse.csr_matrix(
        (np.ones(int(mine.sum()), dtype=np.float32), (np.searchsorted(labels, y[mine]), np.flatnonzero(mine))),
        shape=(len(labels), len(y)),
    )
    label_sums = (member @ rows).toarray().astype(np.float64)
    all_sums = np.asarray(rows.sum(axis=0, dtype=np.float64)).ravel()
    weight, rest = weights[:, :1].astype(np.float64), weights[:, 1:].astype(np.float64)
    return 2.0 * np.linalg.norm(c * ((weight + rest) * label_sums - rest * all_sums), axis=1)


def _import_scikit_learn() -> None:
    """LinearSVC's module: about 1 s of imports (scipy.stats and all), which the primal solvers do without."""
    import sklearn.svm  # noqa: F401


def balanced_weights(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``class_weight="balanced"``: rows / (classes × rows of the class), scikit-learn's formula."""
    return len(y) / (len(classes) * np.bincount(np.searchsorted(classes, y), minlength=len(classes)).astype(np.float64))


def fit_linear_svc(x: sparse.spmatrix, y: np.ndarray, params: dict[str, Any], n_jobs: int = 1) -> LinearSVC:
    """A fitted multi-class LinearSVC, its one-vs-rest problems solved in ``n_jobs`` processes."""
    classes = np.unique(y)
    if len(classes) < 2:
        raise InputError(
            f"all {len(y)} training rows are of class {classes[0] if len(classes) else 'none'}: "
            f"a classifier needs rows of at least two classes"
        )
    if params["class_weight"] == "balanced":
        class_weights = balanced_weights(y, classes)
    else:
        class_weights = np.ones(len(classes))
    if len(classes) == 2:  # one problem, the second class against the first, as scikit-learn fits it
        labels, weights = classes[1:], class_weights[None, ::-1]
    else:
        labels, weights = classes, np.column_stack([class_weights, np.ones(len(classes))])
    rows = newton_svm.prepare(x) if params["solver"] in PRIMAL else sparse.csr_matrix(x, dtype=np.float64)
    coarse = newton_svm.coarse_rows(rows) if params["solver"] == "newton" else None  # shared like the rows
    norms = None if coarse is None else first_norms(rows, y, labels, weights, params["C"])
    _SHARED["problem"] = (rows, y, labels, weights, params, coarse, norms)
    try:
        if n_jobs == 1:
            shares = [np.arange(len(labels))]
        elif params["solver"] == "block":  # one block per process; every n_jobs-th class, to mix costs
            shares = [np.arange(start, len(labels), n_jobs) for start in range(min(n_jobs, len(labels)))]
        else:  # one class per task, handed to whichever process is free: the costs differ a lot
            shares = [np.array([k]) for k in range(len(labels))]
        if params["solver"] not in PRIMAL:
            _import_scikit_learn()  # liblinear fits its LinearSVC: imported once, before forking
        if len(shares) == 1:
            fitted = [_fit_share(shares[0])]
        else:
            with multiprocessing.get_context("fork").Pool(min(n_jobs, len(shares))) as pool:
                pending = pool.map_async(_fit_share, shares, chunksize=1)
                # Imported while the children solve (they forked without it): the parent would only wait,
                # and the model it builds next needs it.
                _import_scikit_learn()
                fitted = pending.get()
    finally:
        _SHARED.clear()
    order = np.argsort(np.concatenate(shares), kind="stable")  # back to class order
    coef = np.vstack([share[0] for share in fitted])[order]
    intercept, iterations, short = (np.concatenate([share[i] for share in fitted])[order] for i in (1, 2, 3))
    if short.any():  # warned here, in the parent: a forked process's warnings would go nowhere
        from sklearn.exceptions import ConvergenceWarning

        warnings.warn(
            f"LinearSVC (solver {params['solver']}) stopped at model.max_iter={params['max_iter']} short of "
            f"model.tol for class(es) {', '.join(map(str, labels[short]))}: raise model.max_iter or model.tol",
            ConvergenceWarning,
            stacklevel=2,
        )
    model = _classifier(params, params["class_weight"])
    model.classes_, model.coef_, model.intercept_ = classes, coef, intercept
    model.n_features_in_, model.n_iter_ = x.shape[1], int(iterations.max())
    return model
