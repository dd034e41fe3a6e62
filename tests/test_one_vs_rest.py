"""The one-vs-rest linear SVM: the same model as scikit-learn's, byte-identical for any number of processes."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import sparse
from sklearn.svm import LinearSVC

from mlops_rakuten.core import newton_svm
from mlops_rakuten.core.demo_data import write_demo_data
from mlops_rakuten.core.features import build_vectorizer
from mlops_rakuten.core.one_vs_rest import balanced_weights, first_norms, fit_linear_svc
from mlops_rakuten.devtools.crossval import load_products

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
LIBLINEAR = {**PARAMS["model"], "solver": "liblinear", "tol": 0.01, "max_iter": 1000}


@pytest.fixture(scope="module")
def demo_features(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    write_demo_data(folder, rows=900, seed=5)
    products = load_products(folder, PARAMS["preprocess"])
    x = build_vectorizer({**PARAMS["featurize"], "n_jobs": 1}).fit_transform(products)
    return x, products["prdtypecode"].to_numpy()


@pytest.mark.parametrize(
    ("params", "coarse_from"),
    [(PARAMS["model"], newton_svm.COARSE_MIN_ROWS), (PARAMS["model"], 0), (LIBLINEAR, newton_svm.COARSE_MIN_ROWS)],
    ids=["newton", "newton-coarse-start", "liblinear"],
)
def test_same_bytes_whatever_the_number_of_processes_and_runs(demo_features, params, coarse_from, monkeypatch):
    monkeypatch.setattr(newton_svm, "COARSE_MIN_ROWS", coarse_from)  # 0: the coarse start at this size too
    x, y = demo_features
    models = [fit_linear_svc(x, y, params, n_jobs=n) for n in (1, 2, 3, 2)]
    dumps = {pickle.dumps(model) for model in models}
    assert len(dumps) == 1
    assert len(models[0].classes_) == 27 and models[0].coef_.shape == (27, x.shape[1])


@pytest.mark.parametrize("class_weight", ["balanced", None])
def test_both_solvers_reach_scikit_learns_multi_class_linear_svc(demo_features, class_weight):
    """Converged tightly, all three give the same model: the objective is the same."""
    x, y = demo_features
    reference = LinearSVC(C=0.7, class_weight=class_weight, dual=True, tol=1e-7, max_iter=100000, random_state=0).fit(
        x, y
    )
    for params, atol in (
        ({**LIBLINEAR, "tol": 1e-7, "max_iter": 100000}, 1e-5),
        ({**PARAMS["model"], "tol": 1e-5, "max_iter": 1000}, 2e-4),
    ):  # float32 rows
        ours = fit_linear_svc(x, y, {**params, "C": 0.7, "class_weight": class_weight}, n_jobs=2)
        assert (ours.classes_ == reference.classes_).all()
        np.testing.assert_allclose(ours.coef_, reference.coef_, atol=atol)
        np.testing.assert_allclose(ours.intercept_, reference.intercept_, atol=atol)
        assert (ours.predict(x) == reference.predict(x)).all()
        assert (ours.decision_function(x[:5]) == x[:5] @ ours.coef_.T + ours.intercept_).all()


def test_c_reaches_both_solvers_and_the_seed_liblinear(demo_features):
    x, y = demo_features
    for params in (PARAMS["model"], LIBLINEAR):
        base = fit_linear_svc(x, y, params, n_jobs=2)
        assert np.abs(fit_linear_svc(x, y, {**params, "C": 0.05}).coef_).sum() < np.abs(base.coef_).sum()
    base = fit_linear_svc(x, y, LIBLINEAR, n_jobs=2)
    assert not np.array_equal(base.coef_, fit_linear_svc(x, y, {**LIBLINEAR, "seed": 7}, n_jobs=2).coef_)


@pytest.mark.parametrize("params", [PARAMS["model"], LIBLINEAR], ids=["newton", "liblinear"])
def test_two_classes_are_one_problem_as_in_scikit_learn(demo_features, params):
    x, y = demo_features
    keep = np.isin(y, [10, 2583])
    model = fit_linear_svc(x[keep], y[keep], {**params, "tol": 1e-6, "max_iter": 10000}, n_jobs=2)
    reference = LinearSVC(
        C=params["C"], class_weight="balanced", dual=True, tol=1e-7, max_iter=100000, random_state=0
    ).fit(x[keep], y[keep])
    assert model.classes_.tolist() == [10, 2583] and model.coef_.shape == (1, x.shape[1])
    np.testing.assert_allclose(model.coef_, reference.coef_, atol=2e-4)
    assert (model.predict(x[keep]) == reference.predict(x[keep])).all()


def test_prepare_appends_the_bias_column_in_float32():
    x = sparse.csr_matrix(np.array([[0.0, 2.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 3.0]]))
    rows = newton_svm.prepare(x)
    assert rows.dtype == np.float32 and rows.shape == (3, 4)
    assert rows.toarray().tolist() == [[0, 2, 0, 1], [0, 0, 0, 1], [1, 0, 3, 1]]


def test_newton_stops_at_max_iter_with_a_warning(demo_features, caplog):
    x, y = demo_features
    rows = newton_svm.prepare(x)
    positive = y == 10
    with caplog.at_level(logging.WARNING, logger="newton_svm"):
        _, _, steps = newton_svm.fit_binary(rows, positive, np.full(len(y), 0.5), tol=1e-9, max_iter=2)
    assert steps == 2
    assert "max_iter=2" in caplog.text and "model.max_iter" in caplog.text
    w, b, steps = newton_svm.fit_binary(rows, positive, np.full(len(y), 0.5), tol=1e-4, max_iter=100)
    assert 2 < steps < 100
    # At the solution the objective is lower than at zero and lower than a nudged solution.
    full = np.append(w, b)
    margins = np.where(positive, 1.0, -1.0) * (rows @ full.astype(np.float32))
    at_solution = newton_svm.objective(full, margins, np.full(len(y), 0.5))
    nudged = full * 1.01
    nudged_margins = np.where(positive, 1.0, -1.0) * (rows @ nudged.astype(np.float32))
    assert at_solution < newton_svm.objective(nudged, nudged_margins, np.full(len(y), 0.5))
    assert at_solution < newton_svm.objective(np.zeros_like(full), np.zeros(len(y)), np.full(len(y), 0.5))


@pytest.mark.parametrize(
    ("params", "dual", "random_state"),
    [(PARAMS["model"], False, None), (LIBLINEAR, True, LIBLINEAR["seed"])],
    ids=["newton", "liblinear"],
)
def test_the_fitted_model_says_how_it_was_fitted(demo_features, params, dual, random_state):
    x, y = demo_features
    model = fit_linear_svc(x, y, params)
    assert model.get_params() | {"dual": dual, "random_state": random_state} == model.get_params()
    assert model.get_params()["C"] == params["C"] and model.get_params()["tol"] == params["tol"]
    # An unfitted copy with these params solves the same problem: the primal one for newton.
    refit = LinearSVC(**model.get_params()).fit(*demo_features)
    assert np.mean(refit.predict(demo_features[0]) == model.predict(demo_features[0])) > 0.97


def test_balanced_weights_are_scikit_learns():
    from sklearn.utils.class_weight import compute_class_weight

    y = np.array([10, 40, 40, 2905, 2905, 2905, 10, 40, 1281])
    classes = np.unique(y)
    assert balanced_weights(y, classes).tobytes() == compute_class_weight("balanced", classes=classes, y=y).tobytes()


def test_the_train_stage_reaches_its_fit_without_importing_scikit_learn():
    """The fit imports scikit-learn while its processes solve; an import at the top would put its second back."""
    probe = "import sys, mlops_rakuten.stages.train; print(sorted(m for m in sys.modules if m.startswith('sklearn')))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("n_classes", [2, 27])
def test_first_norms_are_each_problems_gradient_at_zero(demo_features, n_classes):
    x, y = demo_features
    classes = np.unique(y)[:n_classes]
    keep = np.isin(y, classes)
    rows, y = newton_svm.prepare(x[keep]), y[keep]
    weights = np.column_stack([balanced_weights(y, classes), np.full(len(classes), 0.7)])
    labels, weights = (classes[1:], weights[1:]) if n_classes == 2 else (classes, weights)
    norms = first_norms(rows, y, labels, weights, 0.37)
    exact = rows.astype(np.float64).T
    for label, (weight, rest), norm in zip(labels, weights, norms, strict=True):
        signed_cost = np.where(y == label, 0.37 * weight, -0.37 * rest)
        assert norm == pytest.approx(2.0 * np.linalg.norm(exact @ signed_cost), rel=1e-6)
