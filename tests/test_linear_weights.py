"""core/linear_weights.py: the saved classifier's arrays and predictions, without scikit-learn."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import f1_score
from sklearn.svm import LinearSVC

from mlops_rakuten.core.atomic import dump_pickle, load_pickle
from mlops_rakuten.core.demo_data import write_demo_data
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.feature_files import write_features
from mlops_rakuten.core.features import build_vectorizer
from mlops_rakuten.core.linear_weights import read_linear_weights
from mlops_rakuten.core.one_vs_rest import fit_linear_svc
from mlops_rakuten.core.paths import X_FILE, Y_FILE
from mlops_rakuten.stages.train import save_model

from conftest import ROOT

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[object, np.ndarray, np.ndarray, Path]:
    """The real featurize and train functions on 1,200 demo products; the model saved as train saves it."""
    folder = tmp_path_factory.mktemp("demo")
    write_demo_data(folder, rows=1200, seed=11)
    x = pd.read_csv(folder / X_FILE, index_col=0, keep_default_na=False, dtype=str)
    y = pd.read_csv(folder / Y_FILE, index_col=0)["prdtypecode"].to_numpy()
    extractor = build_vectorizer({**PARAMS["featurize"], "n_jobs": 1})
    features = extractor.fit_transform(x[["designation", "description"]])
    path = folder / "model.joblib"
    save_model(extractor, fit_linear_svc(features, y, PARAMS["model"]), path)
    return extractor, features, y, path


def test_the_arrays_and_predictions_are_the_models(fitted):
    _, features, _, path = fitted
    classifier = load_pickle(path).named_steps["classifier"]
    weights = read_linear_weights(path)
    assert weights.coef.tobytes() == classifier.coef_.tobytes()
    assert weights.intercept.tobytes() == classifier.intercept_.tobytes()
    assert weights.classes.tolist() == classifier.classes_.tolist() and len(weights.classes) == 27
    assert features.dtype == np.float32  # featurize's matrices, as evaluate reads them
    assert np.array_equal(weights.predict(features), classifier.predict(features))


def test_a_two_class_model_predicts_as_scikit_learn_does(fitted, tmp_path: Path):
    extractor, features, y, _ = fitted
    two = np.isin(y, np.unique(y)[:2])
    classifier = LinearSVC(dual=False).fit(features[two], y[two])
    save_model(extractor, classifier, tmp_path / "two.joblib")
    assert np.array_equal(read_linear_weights(tmp_path / "two.joblib").predict(features), classifier.predict(features))


def test_reading_a_model_imports_no_scikit_learn(fitted):
    probe = (
        "import sys; from mlops_rakuten.core.linear_weights import read_linear_weights; "
        f"read_linear_weights({str(fitted[3])!r}); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def evaluate_arguments(model: Path, folder: Path) -> tuple[list[str], dict[str, Path]]:
    """The evaluate stage's command line on ``folder``/test.joblib (also as the train features); its outputs."""
    outputs = {name: folder / f"{name}.out" for name in ("metrics", "class-metrics", "confusion-plot", "predictions")}
    features = str(folder / "test.joblib")
    arguments = ["--model", str(model), "--train-features", features, "--test-features", features]
    return arguments + [f"--{name}={path}" for name, path in outputs.items()], outputs


def test_the_evaluate_stage_scores_as_scikit_learn_would_without_importing_it(fitted, tmp_path: Path):
    _, features, y, path = fitted
    write_features(features, y, tmp_path / "test.joblib")
    arguments, outputs = evaluate_arguments(path, tmp_path)
    probe = (
        f"import sys; from mlops_rakuten.stages import evaluate; evaluate.main({arguments!r}); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    predicted = load_pickle(path).named_steps["classifier"].predict(features)
    assert json.loads(outputs["metrics"].read_text())["f1_weighted"] == round(
        f1_score(y, predicted, average="weighted", zero_division=0), 6
    )
    assert pd.read_csv(outputs["predictions"])["predicted"].tolist() == predicted.tolist()


@pytest.mark.parametrize("content", [{"steps": 1}, [("features", None)], "text", np.arange(3)])
def test_a_file_without_a_fitted_classifier_is_refused_by_name(tmp_path: Path, content: object):
    path = tmp_path / "not_a_model.joblib"
    dump_pickle(content, path)
    with pytest.raises(InputError, match=r"not_a_model\.joblib: expected a fitted Pipeline whose 'classifier'"):
        read_linear_weights(path)


def test_a_file_that_is_no_pickle_is_refused_by_name(tmp_path: Path):
    path = tmp_path / "truncated.joblib"
    path.write_bytes(b"\x80\x04\x95")
    with pytest.raises(InputError, match=r"truncated\.joblib: not a model file"):
        read_linear_weights(path)


def test_evaluate_refuses_features_the_model_was_not_fitted_on(fitted, tmp_path: Path):
    _, features, y, path = fitted
    write_features(features[:, :-1], y, tmp_path / "test.joblib")
    arguments, outputs = evaluate_arguments(path, tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "mlops_rakuten.stages.evaluate", *arguments], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert f"test.joblib: {features.shape[1] - 1} features, but {path} expects {features.shape[1]}" in result.stderr
    assert not any(output.exists() for output in outputs.values())
