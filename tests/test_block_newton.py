"""The block solver (all classes in one Newton pass) against the per-class one: the same model, the same
edge cases, byte-identical for any number of processes, and a ConvergenceWarning when max_iter stops it."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from mlops_rakuten.core import block_newton, newton_svm
from mlops_rakuten.core.demo_data import write_demo_data
from mlops_rakuten.core.features import build_vectorizer
from mlops_rakuten.core.one_vs_rest import fit_linear_svc
from mlops_rakuten.devtools.crossval import load_products
from mlops_rakuten.stages.split import split

from conftest import real_sample

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
BLOCK = {**PARAMS["model"], "solver": "block"}
PER_CLASS = {**PARAMS["model"], "solver": "newton"}
# Both solvers stop at model.tol, each after its own conjugate-gradient steps (sums over all rows or over
# the rows inside the margin round differently): at the project's tol the coefficients of these small sets
# differ by up to 0.016 (the largest are ~2.4); converged to tol 1e-5, by under 1e-4 (float32 noise).
COEF_ATOL_AT_TOL, COEF_ATOL_CONVERGED = 0.05, 2e-4


def featurized(folder: Path) -> tuple[sparse.csr_matrix, np.ndarray, sparse.csr_matrix, np.ndarray]:
    """Train and test matrices of the products in ``folder``, split and featurized as the pipeline does."""
    products = load_products(folder, PARAMS["preprocess"])
    train, test = split(products, PARAMS["split"], folder)
    vectorizer = build_vectorizer({**PARAMS["featurize"], "n_jobs": 1})
    x = vectorizer.fit_transform(train)
    return x, train["prdtypecode"].to_numpy(), vectorizer.transform(test), test["prdtypecode"].to_numpy()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    write_demo_data(folder, rows=1500, seed=5)
    return featurized(folder)


def single_problem(x, positive, C: float, tol: float, max_iter: int = 200):
    """One binary problem by the block solver (a block of one) and by the per-class solver."""
    rows = newton_svm.prepare(x)
    cost = np.full(x.shape[0], C)
    w, b, _, short = block_newton.fit_block(rows, positive[None, :], cost[None, :], tol, max_iter)
    reference = newton_svm.fit_binary(rows, positive, cost, tol, max_iter)
    return (w[0], float(b[0]), bool(short[0])), reference


def objective(x, positive, C, w, b) -> float:
    full = np.append(w, b)
    margins = np.where(positive, 1.0, -1.0) * (newton_svm.prepare(x) @ full.astype(np.float32))
    return newton_svm.objective(full, margins, np.full(x.shape[0], C))


def test_same_model_as_the_per_class_solver_and_same_test_predictions(demo):
    x, y, x_test, y_test = demo
    block, per_class = fit_linear_svc(x, y, BLOCK, n_jobs=2), fit_linear_svc(x, y, PER_CLASS, n_jobs=2)
    assert (block.classes_ == per_class.classes_).all() and block.coef_.shape == (27, x.shape[1])
    np.testing.assert_allclose(block.coef_, per_class.coef_, atol=COEF_ATOL_AT_TOL)
    assert (block.predict(x_test) == per_class.predict(x_test)).all()
    converged = [
        fit_linear_svc(x, y, {**params, "tol": 1e-5, "max_iter": 1000}, n_jobs=2) for params in (BLOCK, PER_CLASS)
    ]
    np.testing.assert_allclose(converged[0].coef_, converged[1].coef_, atol=COEF_ATOL_CONVERGED)
    np.testing.assert_allclose(converged[0].intercept_, converged[1].intercept_, atol=COEF_ATOL_CONVERGED)


def test_same_predictions_as_the_per_class_solver_on_the_genuine_sample():
    x, y, x_test, _ = featurized(real_sample())
    block, per_class = fit_linear_svc(x, y, BLOCK, n_jobs=2), fit_linear_svc(x, y, PER_CLASS, n_jobs=2)
    np.testing.assert_allclose(block.coef_, per_class.coef_, atol=COEF_ATOL_AT_TOL)
    assert (block.predict(x_test) == per_class.predict(x_test)).all()


@pytest.mark.parametrize("C", [1e-4, 0.5, 1e4])
def test_c_at_both_extremes_reaches_the_per_class_optimum(demo, C, caplog):
    x, y, _, _ = demo
    positive = y == 2583
    tol = 1e-5 if C >= 1e4 else 1e-3  # near a hard margin, compared closer to the optimum (test_newton_svm.py)
    with caplog.at_level(logging.WARNING, logger="newton_svm"):
        (w, b, short), (w_ref, b_ref, _) = single_problem(x, positive, C, tol)
    assert not short and caplog.text == ""
    ours, theirs = objective(x, positive, C, w, b), objective(x, positive, C, w_ref, b_ref)
    assert abs(ours - theirs) <= 1e-2 * theirs, (ours, theirs)
    assert ((x @ w + b > 0) == (x @ w_ref + b_ref > 0)).mean() > 0.99


def test_a_class_with_one_row_is_learnt_like_liblinear_learns_it(demo):
    x, y, _, _ = demo
    only = np.flatnonzero(y == 10)[0]
    keep = (y != 10) | (np.arange(len(y)) == only)
    x, y = x[keep], y[keep]
    model = fit_linear_svc(x, y, {**BLOCK, "tol": 1e-3})
    reference = LinearSVC(C=BLOCK["C"], class_weight="balanced", dual=False, tol=1e-6).fit(x, y)
    assert (model.predict(x) == reference.predict(x)).mean() > 0.99
    row = model.classes_.tolist().index(10)
    np.testing.assert_allclose(model.coef_[row], reference.coef_[row], atol=0.05)
    assert model.predict(x[np.flatnonzero(y == 10)])[0] == 10


def test_duplicating_every_row_is_doubling_c(demo):
    x, y, _, _ = demo
    positive = y == 1280
    twice = newton_svm.prepare(sparse.vstack([x, x], format="csr"))
    both = np.concatenate([positive, positive])[None, :]
    w1, b1, _, _ = block_newton.fit_block(twice, both, np.full((1, 2 * len(y)), 0.5), 1e-5, 200)
    w2, b2, _, _ = block_newton.fit_block(
        newton_svm.prepare(x), positive[None, :], np.full((1, len(y)), 1.0), 1e-5, 200
    )
    np.testing.assert_allclose(w1, w2, atol=1e-4)
    assert abs(b1[0] - b2[0]) < 1e-4


def test_rows_with_no_features_only_move_the_intercept(demo, caplog):
    x, y, _, _ = demo
    empty = sparse.csr_matrix((40, x.shape[1]), dtype=x.dtype)
    x_more = sparse.vstack([x, empty], format="csr")
    positive = np.concatenate([y == 2583, np.arange(40) < 30])
    with caplog.at_level(logging.WARNING, logger="newton_svm"):
        (w, b, short), (w_ref, b_ref, _) = single_problem(x_more, positive, 0.5, 1e-3)
    assert not short and caplog.text == ""
    assert objective(x_more, positive, 0.5, w, b) <= objective(x_more, positive, 0.5, w_ref, b_ref) * (1 + 1e-2)
    assert abs(b - b_ref) < 0.05


def test_same_bytes_whatever_the_number_of_processes_and_runs(demo):
    x, y, _, _ = demo
    dumps = {pickle.dumps(fit_linear_svc(x, y, BLOCK, n_jobs=n)) for n in (1, 2, 3, 2, 1)}
    assert len(dumps) == 1
    model = pickle.loads(dumps.pop())
    assert model.get_params()["dual"] is False and model.get_params()["tol"] == BLOCK["tol"]


def test_max_iter_stops_with_a_convergence_warning_naming_the_classes(demo, caplog):
    x, y, _, _ = demo
    with pytest.warns(ConvergenceWarning, match=r"solver block\) stopped at model.max_iter=2 .*class\(es\) 10, "):
        model = fit_linear_svc(x, y, {**BLOCK, "tol": 1e-9, "max_iter": 2}, n_jobs=2)
    assert model.n_iter_ == 2
    with caplog.at_level(logging.WARNING, logger="newton_svm"):
        (_, _, short), _ = single_problem(x, y == 10, 0.5, tol=1e-9, max_iter=2)
    assert short and "stopped at max_iter=2 for class 1 of 1" in caplog.text


def test_a_block_of_classes_gives_each_class_its_own_solution(demo):
    """A class's coefficients do not depend on the other classes in its block, to the bit."""
    x, y, _, _ = demo
    rows = newton_svm.prepare(x)
    labels = np.array([10, 1280, 2583])
    positive = y[None, :] == labels[:, None]
    cost = np.where(positive, 2.0, 0.5)
    together = block_newton.fit_block(rows, positive, cost, 1e-3, 100)
    for k in range(len(labels)):
        alone = block_newton.fit_block(rows, positive[k : k + 1], cost[k : k + 1], 1e-3, 100)
        assert together[0][k].tobytes() == alone[0][0].tobytes() and together[2][k] == alone[2][0]


def test_a_failed_line_search_is_reported_and_ends_that_class(demo, caplog, monkeypatch):
    x, y, _, _ = demo
    monkeypatch.setattr(newton_svm, "LINE_SEARCH_HALVINGS", 0)  # no step is ever tried
    with caplog.at_level(logging.WARNING, logger="newton_svm"):
        _, _, steps, short = block_newton.fit_block(
            newton_svm.prepare(x), (y == 10)[None, :], np.full((1, len(y)), 0.5), 1e-3, 50
        )
    assert steps.tolist() == [1] and not short[0]
    assert "stopped at step 1 for class 1 of 1: the line search found no decrease" in caplog.text
