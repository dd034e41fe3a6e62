"""Stage train: fit LinearSVC on the features; save extractor + classifier as ONE Pipeline each.

Two models come out, both taking raw ``designation``/``description``:

- the hold-out model, fitted on the train split only: ``evaluate`` scores it on
  the test split, which it never saw;
- the shipped model (``predict``, the API), refitted with the same params on
  train + test when ``model.refit_on_all`` is true. On a few thousand products
  every extra row still pays (README, "Quality and speed"); it keeps the
  hold-out model's vocabulary, so the metrics describe the same features.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from joblib import Parallel, delayed
from scipy import sparse
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from mlops_rakuten.atomic import dump_joblib
from mlops_rakuten.errors import exit_on_input_error, setup_logging
from mlops_rakuten.features import load_features, make_picklable_stable
from mlops_rakuten.params import read_params

log = logging.getLogger("train")

Labelled = tuple[sparse.spmatrix, np.ndarray]


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


def fit_holdout_and_shipped(train: Labelled, test: Labelled, params: dict[str, Any]) -> tuple[LinearSVC, LinearSVC]:
    """The classifier to evaluate (train split) and the one to ship (train + test if ``refit_on_all``).

    The two fits run in separate processes, not threads: liblinear's random
    generator is global to a process, so threads would make the result
    depend on scheduling.
    """
    jobs = [train]
    if params["refit_on_all"]:
        jobs.append((sparse.vstack([train[0], test[0]], format="csr"), np.concatenate([train[1], test[1]])))
    fitted = Parallel(n_jobs=min(params["n_jobs"], len(jobs)))(
        delayed(fit_classifier)(x, y, params) for x, y in jobs
    )
    return fitted[0], fitted[-1]


def save_model(vectorizer: Pipeline, classifier: LinearSVC, path: Path) -> None:
    dump_joblib(make_picklable_stable(Pipeline([("features", vectorizer), ("classifier", classifier)])), path)


@exit_on_input_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--features", required=True, type=Path, help="train matrix and labels (joblib)")
    parser.add_argument("--test-features", required=True, type=Path, help="test matrix and labels (joblib)")
    parser.add_argument("--vectorizer", required=True, type=Path, help="fitted extractor (joblib)")
    parser.add_argument("--holdout-out", required=True, type=Path, help="model fitted on the train split (joblib)")
    parser.add_argument("--out", required=True, type=Path, help="model to ship (joblib)")
    args = parser.parse_args(argv)
    setup_logging()
    params = read_params(args.params, "model")
    train, test = load_features(args.features), load_features(args.test_features)
    vectorizer = joblib.load(args.vectorizer)
    start = time.perf_counter()
    holdout, shipped = fit_holdout_and_shipped(train, test, params)
    rows = train[0].shape[0] + (test[0].shape[0] if params["refit_on_all"] else 0)
    log.info("LinearSVC(C=%s), %d features, %d classes: hold-out model on %d train rows, shipped model on %d rows "
             "in %.1fs", params["C"], train[0].shape[1], len(holdout.classes_), train[0].shape[0], rows,
             time.perf_counter() - start)
    save_model(vectorizer, holdout, args.holdout_out)
    save_model(vectorizer, shipped, args.out)
    log.info("saved %s and %s", args.holdout_out, args.out)


if __name__ == "__main__":
    main()
