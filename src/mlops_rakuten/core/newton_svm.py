"""LinearSVC's binary problem solved in the primal by Newton's method, on float32 sparse rows.

It minimises scikit-learn's LinearSVC objective (squared hinge loss, intercept
as a feature of constant 1 regularised like the others, ``intercept_scaling=1``)::

    ½‖w‖² + Σᵢ cᵢ · max(0, 1 − yᵢ · xᵢw)²        yᵢ = ±1, cᵢ = C × the weight of yᵢ's class

the way liblinear's primal solver does: Newton steps, each solved by conjugate
gradients on the rows inside the margin, then a backtracking line search. It stops when the gradient norm
falls below ``tol × max(min(positives, negatives), 1) / rows`` of its value at
w = 0, liblinear's own criterion for its primal solver.

From COARSE_MIN_ROWS rows on, each problem starts from its own solution on every
8th row (to ``COARSE_TOL``): from w = 0 every row is inside the margin, and those
first Newton steps, over the whole matrix, were half of the solver's time; from
the coarse solution only the rows near its margin are read. 2.85 to 3.4× less CPU on
the real-like full-size set, 1.55× on demo data (docs/speed.md).

Why not liblinear: every pass over the data is a float32 CSR product (half the
memory traffic of liblinear's double-precision nodes), the matrix is prepared
once for all 27 one-vs-rest problems instead of copied into liblinear's format
for each, and the time hardly depends on C (liblinear's dual solver needs ever
more passes as C grows). Sums that decide steps and stopping are taken in
float64. There is no randomness: the result depends on the inputs only.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import sparse

log = logging.getLogger("newton_svm")

CG_TOLERANCE = 0.3  # each Newton step is solved to 30 % of the gradient norm: enough for the outer loop
CG_MAX_STEPS = 500
SLICE_BELOW = 0.5  # copy out the rows inside the margin once they are under half of all rows
LINE_SEARCH_HALVINGS = 30
# The start: every 8th row, solved to a looser tolerance; below COARSE_MIN_ROWS rows the whole problem is cheap.
COARSE_STRIDE = 8
COARSE_TOL = 0.03
COARSE_MIN_ROWS = 20_000


def prepare(x: sparse.spmatrix) -> sparse.csr_matrix:
    """float32 CSR with a trailing column of ones; shared by every binary problem on these rows.

    Built in place of ``sparse.hstack``, which goes through COO and takes ten times as long.
    """
    x = sparse.csr_matrix(x)
    n_rows, n_cols = x.shape
    lengths = np.diff(x.indptr)
    indptr = np.concatenate([[0], np.cumsum(lengths + 1)]).astype(np.int64)
    bias = np.zeros(indptr[-1], dtype=bool)
    bias[indptr[1:] - 1] = True
    data = np.ones(indptr[-1], dtype=np.float32)
    indices = np.full(indptr[-1], n_cols, dtype=np.int32)
    data[~bias], indices[~bias] = x.data, x.indices
    return sparse.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols + 1))


def objective(w: np.ndarray, margins: np.ndarray, cost: np.ndarray) -> float:
    """The primal objective at w, given the margins yᵢ · xᵢw."""
    loss = np.maximum(0.0, 1.0 - margins)
    return 0.5 * float(w @ w) + float(cost @ (loss * loss))


def coarse_rows(x: sparse.csr_matrix) -> sparse.csr_matrix | None:
    """Every COARSE_STRIDE-th row of a prepared matrix, for ``fit_binary``'s start; None when it would not pay."""
    return x[::COARSE_STRIDE] if x.shape[0] >= COARSE_MIN_ROWS else None


def fit_binary(
    x: sparse.csr_matrix,
    positive: np.ndarray,
    cost: np.ndarray,
    tol: float,
    max_iter: int,
    coarse: sparse.csr_matrix | None = None,
    first_norm: float | None = None,
) -> tuple[np.ndarray, float, int]:
    """Coefficients, intercept and Newton steps for ``positive`` (bool per row) against the rest.

    ``x`` comes from ``prepare``; ``cost`` is cᵢ per row (float64). With ``coarse`` (``coarse_rows(x)``)
    the solver starts from the solution of the same problem on those rows, their cost scaled up so
    that they stand for all the rows: the first Newton steps from w = 0, where every row is inside
    the margin, are then taken on an eighth of the matrix. The objective and the stopping rule
    (measured against the gradient at w = 0 of the whole problem, ``first_norm`` when the caller
    has it) are unchanged.
    """
    w = np.zeros(x.shape[1])
    if coarse is None:
        first_norm = None  # the norm at w = 0 is the loop's first
    else:
        picked = slice(None, None, COARSE_STRIDE)
        w, _ = _newton(coarse, positive[picked], cost[picked] * COARSE_STRIDE, COARSE_TOL, max_iter, w, quiet=True)
        if first_norm is None:
            sign = np.where(positive, 1.0, -1.0)
            first_norm = 2.0 * float(np.linalg.norm(_transposed_product(x, cost * sign)))  # ‖gradient at w = 0‖
    w, steps = _newton(x, positive, cost, tol, max_iter, w, first_norm=first_norm)
    return w[:-1], float(w[-1]), steps


def _newton(
    x: sparse.csr_matrix,
    positive: np.ndarray,
    cost: np.ndarray,
    tol: float,
    max_iter: int,
    w: np.ndarray,
    first_norm: float | None = None,
    quiet: bool = False,
) -> tuple[np.ndarray, int]:
    """Newton steps from ``w`` until the gradient norm is ``tol``-small against ``first_norm``.

    ``first_norm`` defaults to the norm at ``w`` itself; ``quiet`` keeps the warnings of a start's solve
    (a start short of its tolerance costs only steps) out of the log.
    """
    n = x.shape[0]
    sign = np.where(positive, 1.0, -1.0)
    n_pos = int(positive.sum())
    stop_ratio = tol * max(min(n_pos, n - n_pos), 1) / n
    w = w.copy()
    scores = (x @ w.astype(np.float32)).astype(np.float64) if w.any() else np.zeros(n)  # xᵢw
    steps, capped = 0, 0
    while True:
        margins = sign * scores
        inside = margins < 1.0
        if inside.sum() < SLICE_BELOW * n:
            keep = np.flatnonzero(inside)
            x_in, cost_in, residual = x[keep], cost[keep], scores[keep] - sign[keep]
        else:  # most rows inside: mask the others out instead of copying the matrix
            x_in, cost_in, residual = x, cost * inside, scores - sign
        gradient = w + 2.0 * _transposed_product(x_in, cost_in * residual)
        norm = float(np.linalg.norm(gradient))
        first_norm = norm if first_norm is None else first_norm
        if norm <= stop_ratio * first_norm or norm == 0.0:
            break
        if steps == max_iter:
            _warn(
                quiet,
                "Newton solver stopped at max_iter=%d with the gradient at %.2g of its first value "
                "(tol asks %.2g): raise model.max_iter or model.tol",
                max_iter,
                norm / first_norm,
                stop_ratio,
            )
            break
        steps += 1
        direction, moved_in, reached = _newton_direction(x_in, cost_in, gradient, CG_TOLERANCE * norm)
        capped += not reached
        moved = moved_in if x_in is x else x @ direction.astype(np.float32)  # X·direction, for the scores
        step = line_search(w, scores, sign, cost, direction, moved, float(gradient @ direction))
        if step == 0.0:  # no decrease left at float32 precision: as converged as it gets, short of tol
            _warn(
                quiet,
                "Newton solver stopped at step %d: the line search found no decrease in %d halvings, "
                "with the gradient at %.2g of its first value (tol asks %.2g)",
                steps,
                LINE_SEARCH_HALVINGS,
                norm / first_norm,
                stop_ratio,
            )
            break
        w += step * direction
        scores += step * moved
    if capped:
        _warn(
            quiet,
            "Newton solver: conjugate gradients stopped at their cap of %d steps, short of their target, "
            "in %d of %d Newton steps (each of those steps is approximate)",
            CG_MAX_STEPS,
            capped,
            steps,
        )
    return w, steps


def _warn(quiet: bool, message: str, *args: object) -> None:
    if not quiet:
        log.warning(message, *args)


def _transposed_product(x: sparse.csr_matrix, values: np.ndarray) -> np.ndarray:
    return (x.T @ values.astype(np.float32)).astype(np.float64)


def _newton_direction(
    x_in: sparse.csr_matrix, cost_in: np.ndarray, gradient: np.ndarray, target: float
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Solve (I + 2 Xᵀ diag(c) X) d = −gradient by conjugate gradients, to a residual of ``target``.

    Returns d, X·d (summed from the products the iterations make anyway), and whether the residual
    reached ``target`` within ``CG_MAX_STEPS``.
    No preconditioner: TF-IDF rows have unit norm per block, and the Hessian's
    diagonal (dominated by the bias column) took twice the steps on this data.
    """
    direction, moved = np.zeros_like(gradient), np.zeros(x_in.shape[0])
    residual = -gradient
    search = residual.copy()
    product = float(residual @ residual)
    for _ in range(CG_MAX_STEPS):
        search_moved = x_in @ search.astype(np.float32)
        hessian_search = search + 2.0 * _transposed_product(x_in, cost_in * search_moved)
        alpha = product / float(search @ hessian_search)
        direction += alpha * search
        moved += alpha * search_moved
        residual -= alpha * hessian_search
        next_product = float(residual @ residual)
        if next_product <= target * target:
            return direction, moved, True
        search = residual + (next_product / product) * search
        product = next_product
    return direction, moved, False


def line_search(
    w: np.ndarray,
    scores: np.ndarray,
    sign: np.ndarray,
    cost: np.ndarray,
    direction: np.ndarray,
    moved: np.ndarray,
    slope: float,
) -> float:
    """Largest step 1, ½, ¼... with sufficient decrease (Armijo); 0.0 when none is found."""
    start = objective(w, sign * scores, cost)
    step = 1.0
    for _ in range(LINE_SEARCH_HALVINGS):
        if objective(w + step * direction, sign * (scores + step * moved), cost) <= start + 0.01 * step * slope:
            return step
        step /= 2.0
    return 0.0
