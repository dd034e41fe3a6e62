"""Stage train: fit LinearSVC on the train features; save extractor + classifier as ONE Pipeline.

The saved model takes raw ``designation``/``description`` and predicts ``prdtypecode``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from scipy import sparse
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from mlops_rakuten.atomic import dump_joblib
from mlops_rakuten.errors import exit_on_input_error, setup_logging
from mlops_rakuten.features import load_features, make_picklable_stable
from mlops_rakuten.params import read_params

log = logging.getLogger("train")


def fit_classifier(x: sparse.spmatrix, y: np.ndarray, params: dict[str, Any]) -> LinearSVC:
    classifier = LinearSVC(
        C=params["C"],
        class_weight=params["class_weight"],
        dual=params["dual"],
        tol=params["tol"],
        max_iter=params["max_iter"],
        random_state=params["seed"],
    )
    return classifier.fit(x, y)


@exit_on_input_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--features", required=True, type=Path, help="train matrix and labels (joblib)")
    parser.add_argument("--vectorizer", required=True, type=Path, help="fitted extractor (joblib)")
    parser.add_argument("--out", required=True, type=Path, help="model pipeline (joblib)")
    args = parser.parse_args(argv)
    setup_logging()
    params = read_params(args.params, "model")
    x, y = load_features(args.features)
    start = time.perf_counter()
    classifier = fit_classifier(x, y, params)
    log.info("LinearSVC(C=%s) fitted on %d rows x %d features, %d classes in %.1fs",
             params["C"], x.shape[0], x.shape[1], len(classifier.classes_), time.perf_counter() - start)
    model = Pipeline([("features", joblib.load(args.vectorizer)), ("classifier", classifier)])
    dump_joblib(make_picklable_stable(model), args.out)
    log.info("model saved to %s", args.out)


if __name__ == "__main__":
    main()
