"""The one-vs-rest LinearSVC: the same model as scikit-learn's, byte-identical for any number of processes."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.svm import LinearSVC

from mlops_rakuten.crossval import load_products
from mlops_rakuten.demo_data import write_demo_data
from mlops_rakuten.features import build_vectorizer
from mlops_rakuten.one_vs_rest import fit_linear_svc

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture(scope="module")
def demo_features(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    write_demo_data(folder, rows=900, seed=5)
    products = load_products(folder, PARAMS["preprocess"])
    x = build_vectorizer({**PARAMS["featurize"], "n_jobs": 1}).fit_transform(products)
    return x, products["prdtypecode"].to_numpy()


def test_same_bytes_whatever_the_number_of_processes_and_runs(demo_features):
    x, y = demo_features
    models = [fit_linear_svc(x, y, PARAMS["model"], n_jobs=n) for n in (1, 2, 3, 2)]
    dumps = {pickle.dumps(model) for model in models}
    assert len(dumps) == 1
    assert len(models[0].classes_) == 27 and models[0].coef_.shape == (27, x.shape[1])


@pytest.mark.parametrize("class_weight", ["balanced", None])
def test_solves_the_problems_of_scikit_learns_multi_class_linear_svc(demo_features, class_weight):
    """Converged tightly, both give the same coefficients: only liblinear's visiting order differs."""
    x, y = demo_features
    params = {**PARAMS["model"], "C": 0.7, "class_weight": class_weight, "tol": 1e-7, "max_iter": 100000}
    ours = fit_linear_svc(x, y, params, n_jobs=2)
    reference = LinearSVC(C=0.7, class_weight=class_weight, dual=True, tol=1e-7, max_iter=100000,
                          random_state=0).fit(x, y)
    assert (ours.classes_ == reference.classes_).all()
    np.testing.assert_allclose(ours.coef_, reference.coef_, atol=1e-5)
    np.testing.assert_allclose(ours.intercept_, reference.intercept_, atol=1e-5)
    assert (ours.predict(x) == reference.predict(x)).all()
    assert (ours.decision_function(x[:5]) == x[:5] @ ours.coef_.T + ours.intercept_).all()


def test_the_seed_and_c_reach_the_solver(demo_features):
    x, y = demo_features
    base = fit_linear_svc(x, y, PARAMS["model"], n_jobs=2)
    assert not np.array_equal(base.coef_, fit_linear_svc(x, y, {**PARAMS["model"], "seed": 7}, n_jobs=2).coef_)
    assert np.abs(fit_linear_svc(x, y, {**PARAMS["model"], "C": 0.05}).coef_).sum() < np.abs(base.coef_).sum()


def test_two_classes_fall_back_to_one_binary_problem(demo_features):
    x, y = demo_features
    keep = np.isin(y, [10, 2583])
    model = fit_linear_svc(x[keep], y[keep], PARAMS["model"], n_jobs=2)
    assert model.classes_.tolist() == [10, 2583] and model.coef_.shape == (1, x.shape[1])
    assert set(model.predict(x[keep])) == {10, 2583}
