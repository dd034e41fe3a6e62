"""Cross-validation of params.yaml (make bench-real), and ingest on the real challenge formatting."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlops_rakuten.core.demo_data import write_demo_data
from mlops_rakuten.devtools.crossval import cross_validate, load_products

from conftest import ROOT, real_sample

pytestmark = pytest.mark.slow

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def test_cross_validation_scores_both_models_on_every_fold_reproducibly(tmp_path: Path):
    write_demo_data(tmp_path, rows=600, seed=3)
    products = load_products(tmp_path, PARAMS["preprocess"])
    params = {"split": PARAMS["split"], "featurize": {**PARAMS["featurize"], "n_jobs": 1}, "model": PARAMS["model"]}
    scores = cross_validate(products, params, folds=3, seeds=(0, 1))
    assert set(scores) == {"holdout", "shipped"}
    assert scores["holdout"].shape == scores["shipped"].shape == (6,)
    assert 0.4 < scores["holdout"].mean() <= 1.0 and 0.4 < scores["shipped"].mean() <= 1.0
    # The shipped model learnt from the inner test split too, so it is a different model.
    assert (scores["shipped"] != scores["holdout"]).any()
    again = cross_validate(products, params, folds=3, seeds=(0, 1))
    assert all((scores[name] == again[name]).all() for name in scores)
    other = cross_validate(products, params, folds=3, seeds=(5, 6))
    assert not (scores["shipped"] == other["shipped"]).all()


def test_ingest_and_cleaning_read_the_real_challenge_files():
    products = load_products(real_sample(), PARAMS["preprocess"])
    assert len(products) > 2000
    assert products["prdtypecode"].nunique() == 27
    assert not products["description"].str.contains("<p>|&eacute;|&amp;", regex=True).any()
    assert (products["description"] == "").mean() > 0.2
