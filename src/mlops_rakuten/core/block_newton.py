"""All one-vs-rest problems of LinearSVC solved together by Newton's method, one matrix pass per step.

Each class k has exactly the binary problem of mlops_rakuten.core.newton_svm::

    ½‖wₖ‖² + Σᵢ cᵢₖ · max(0, 1 − yᵢₖ · xᵢwₖ)²

with the same Newton steps, conjugate-gradient target, Armijo line search and stopping rule
(``tol`` × max(min(positives, negatives), 1) / rows of the first gradient norm). What changes is
how the matrix is read: the classes still running are one dense block, so each conjugate-gradient
step makes one product X·S (rows × active classes) and one Xᵀ·M instead of one pair per class.
A class leaves the block as soon as it has converged (or hit ``max_iter``), so the block shrinks.

Each class's numbers never depend on which other classes share its block: a sparse × dense product
sums every output column in the same order whatever the block's width, and every reduction over
one class (norms, dot products, line search) is taken on that class's own row. So any split of the
classes over processes gives byte-identical coefficients.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import sparse

from mlops_rakuten.core import newton_svm
from mlops_rakuten.core.newton_svm import CG_MAX_STEPS, CG_TOLERANCE, line_search

log = logging.getLogger("newton_svm")


def fit_block(
    x: sparse.csr_matrix,
    positive: np.ndarray,
    cost: np.ndarray,
    tol: float,
    max_iter: int,
    names: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Coefficients (classes × features), intercepts, Newton steps, and whether max_iter stopped each class.

    ``x`` comes from ``newton_svm.prepare``; ``positive`` is bool (classes × rows), class k's rows
    against the rest; ``cost`` is cᵢₖ (classes × rows, float64); ``names`` name the classes in warnings.
    """
    n_classes, n = positive.shape
    names = names or [f"{k + 1} of {n_classes}" for k in range(n_classes)]
    sign = np.where(positive, 1.0, -1.0)
    n_pos = positive.sum(axis=1)
    stop_ratio = tol * np.maximum(np.minimum(n_pos, n - n_pos), 1) / n
    w = np.zeros((n_classes, x.shape[1]))
    scores = np.zeros((n_classes, n))  # xᵢwₖ, one row per class
    first_norm = np.zeros(n_classes)
    steps, capped = np.zeros(n_classes, dtype=np.int64), np.zeros(n_classes, dtype=np.int64)
    stopped_short = np.zeros(n_classes, dtype=bool)
    active = np.arange(n_classes)
    while len(active):
        inside = sign[active] * scores[active] < 1.0
        weight = cost[active] * inside  # cᵢₖ on the rows inside class k's margin, 0 elsewhere
        gradient = w[active] + 2.0 * _transposed_product(x, weight * (scores[active] - sign[active]))
        norm = np.array([float(np.linalg.norm(row)) for row in gradient])
        first = steps[active] == 0
        first_norm[active[first]] = norm[first]
        relative = norm / np.where(first_norm[active] > 0, first_norm[active], 1.0)
        done = (norm <= stop_ratio[active] * first_norm[active]) | (norm == 0.0)
        short = ~done & (steps[active] == max_iter)
        stopped_short[active[short]] = True
        for k, ratio in zip(active[short], relative[short], strict=True):
            log.warning(
                "Newton solver stopped at max_iter=%d for class %s with the gradient at %.2g of its "
                "first value (tol asks %.2g): raise model.max_iter or model.tol",
                max_iter,
                names[k],
                ratio,
                stop_ratio[k],
            )
        keep = ~done & (steps[active] < max_iter)
        active, gradient, norm, weight = active[keep], gradient[keep], norm[keep], weight[keep]
        if not len(active):
            break
        steps[active] += 1
        # All rows, even those outside every margin (weight 0): slicing to the rows inside some class's
        # margin would make each class's sums depend on the other classes of its block.
        direction, moved, reached = _newton_directions(x, weight, gradient, CG_TOLERANCE * norm)
        capped[active[~reached]] += 1
        stopped = []
        for i, k in enumerate(active):
            step = line_search(w[k], scores[k], sign[k], cost[k], direction[i], moved[i], gradient[i] @ direction[i])
            if step == 0.0:  # no decrease left at float32 precision: as converged as it gets, short of tol
                log.warning(
                    "Newton solver stopped at step %d for class %s: the line search found no decrease "
                    "in %d halvings, with the gradient at %.2g of its first value (tol asks %.2g)",
                    steps[k],
                    names[k],
                    newton_svm.LINE_SEARCH_HALVINGS,
                    norm[i] / first_norm[k],
                    stop_ratio[k],
                )
                stopped.append(i)
                continue
            w[k] += step * direction[i]
            scores[k] += step * moved[i]
        active = np.delete(active, stopped)
    for k in np.flatnonzero(capped):
        log.warning(
            "Newton solver: conjugate gradients stopped at their cap of %d steps, short of their target, "
            "in %d of %d Newton steps of class %s (each of those steps is approximate)",
            CG_MAX_STEPS,
            capped[k],
            steps[k],
            names[k],
        )
    return w[:, :-1], w[:, -1].copy(), steps, stopped_short


def _product(x: sparse.csr_matrix, block: np.ndarray) -> np.ndarray:
    """X · blockᵀ as (classes × rows) float64: one pass over the matrix for the whole block."""
    dense = np.ascontiguousarray(block.T, dtype=np.float32)
    return np.asarray(x @ dense).T.astype(np.float64)


def _transposed_product(x: sparse.csr_matrix, block: np.ndarray) -> np.ndarray:
    """Xᵀ · blockᵀ as (classes × features) float64: one pass over the matrix for the whole block."""
    dense = np.ascontiguousarray(block.T, dtype=np.float32)
    return np.asarray(x.T @ dense).T.astype(np.float64)


def _dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-by-row dot products, each its own BLAS call: no class's sum depends on the block's width."""
    return np.array([float(left @ right) for left, right in zip(a, b, strict=True)])


def _newton_directions(
    x_in: sparse.csr_matrix, weight: np.ndarray, gradient: np.ndarray, target: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Solve (I + 2 Xᵀ diag(cₖ) X) dₖ = −gradientₖ for every class by conjugate gradients.

    Each class stops at its own residual ``target``; the block shrinks to the classes still
    iterating. Returns d, X·d on ``x_in``'s rows, and whether each class reached its target.
    """
    direction, moved = np.zeros_like(gradient), np.zeros((len(gradient), x_in.shape[0]))
    residual = -gradient
    search = residual.copy()
    product = _dots(residual, residual)
    running = np.arange(len(gradient))
    reached = np.zeros(len(gradient), dtype=bool)
    for _ in range(CG_MAX_STEPS):
        search_moved = _product(x_in, search[running])
        hessian_search = search[running] + 2.0 * _transposed_product(x_in, weight[running] * search_moved)
        alpha = product[running] / _dots(search[running], hessian_search)
        direction[running] += alpha[:, None] * search[running]
        moved[running] += alpha[:, None] * search_moved
        residual[running] -= alpha[:, None] * hessian_search
        next_product = _dots(residual[running], residual[running])
        finished = next_product <= target[running] * target[running]
        reached[running[finished]] = True
        going, next_product = running[~finished], next_product[~finished]
        search[going] = residual[going] + (next_product / product[going])[:, None] * search[going]
        product[going] = next_product
        running = going
        if not len(running):
            break
    return direction, moved, reached
