"""Stage train: fit LinearSVC on the features; save extractor + classifier as ONE Pipeline each.

Two models come out, both taking raw ``designation``/``description``:

- the hold-out model, fitted on the train split only: ``evaluate`` scores it on
  the test split, which it never saw;
- the shipped model (``predict``, the API), refitted with the same params on
  train + test when ``model.refit_on_all`` is true and train + test hold at most
  ``model.refit_max_rows`` rows. On a few thousand products every extra row
  still pays (docs/quality.md); at full size 10 % more rows gain
  little and the refit would double the cost of every experiment, so the
  shipped model is then the hold-out one (docs/speed.md). It keeps the
  hold-out model's vocabulary, so the metrics describe the same features.
  The held-out rows of uploaded batches (core/batches.py) are left out of the
  refit: kept for evaluation, no model is ever fitted on them.

Each fit shares the 27 one-vs-rest problems out over ``model.n_jobs``
processes (mlops_rakuten.core.one_vs_rest), solved by ``model.solver``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import sparse

from mlops_rakuten.core.atomic import atomic_path, dump_pickle, load_pickle
from mlops_rakuten.core.errors import exit_on_input_error, exit_skipping_teardown, setup_logging
from mlops_rakuten.core.feature_files import load_features, load_held_out
from mlops_rakuten.core.one_vs_rest import fit_linear_svc
from mlops_rakuten.core.params import read_params

# scikit-learn (about 1 s to import) is left to the fit, which imports it while its processes solve.
if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline
    from sklearn.svm import LinearSVC

log = logging.getLogger("train")

Labelled = tuple[sparse.spmatrix, np.ndarray]


def fit_holdout_and_shipped(
    train: Labelled, test: Labelled, params: dict[str, Any], held_out: np.ndarray | None = None
) -> tuple[LinearSVC, LinearSVC]:
    """The classifier to evaluate (train split) and the one to ship.

    The shipped one is refitted on train + test (less the ``held_out`` test rows) when
    ``refit_on_all`` is true and those hold at most ``refit_max_rows`` rows; otherwise it is the
    hold-out classifier itself. Each fit shares its classes out over ``n_jobs`` processes.
    """
    holdout = fit_linear_svc(*train, params, n_jobs=params["n_jobs"])
    if held_out is not None and held_out.any():
        test = (test[0][~held_out], test[1][~held_out])
    if not shipped_is_refitted(train[0].shape[0] + test[0].shape[0], params):
        return holdout, holdout
    everything = (sparse.vstack([train[0], test[0]], format="csr"), np.concatenate([train[1], test[1]]))
    return holdout, fit_linear_svc(*everything, params, n_jobs=params["n_jobs"])


def shipped_is_refitted(rows: int, params: dict[str, Any]) -> bool:
    """Whether the shipped model is refitted on the ``rows`` of train + test."""
    return params["refit_on_all"] and rows <= params["refit_max_rows"]


def save_model(vectorizer: Pipeline, classifier: LinearSVC, path: Path) -> None:
    from sklearn.pipeline import Pipeline

    from mlops_rakuten.core.features import make_picklable_stable

    dump_pickle(make_picklable_stable(Pipeline([("features", vectorizer), ("classifier", classifier)])), path)


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
    held_out = load_held_out(args.test_features)
    start = time.perf_counter()
    holdout, shipped = fit_holdout_and_shipped(train, test, params, held_out)
    n_held = int(held_out.sum()) if held_out is not None else 0
    all_rows = train[0].shape[0] + test[0].shape[0] - n_held
    shipped_on = (
        f"refitted on {all_rows} rows" + (f" ({n_held} held-out batch rows left out)" if n_held else "")
        if shipped_is_refitted(all_rows, params)
        else (
            f"the hold-out one (no refit above {params['refit_max_rows']} rows)"
            if params["refit_on_all"]
            else "the hold-out one (refit_on_all is false)"
        )
    )
    steps = "passes" if params["solver"] == "liblinear" else "Newton steps"
    log.info(
        "LinearSVC(C=%s, solver %s), %d features, %d classes in %d processes, up to %d %s per class "
        "(limit %d): hold-out model on %d train rows, shipped model %s; %.1fs",
        params["C"],
        params["solver"],
        train[0].shape[1],
        len(holdout.classes_),
        params["n_jobs"],
        max(holdout.n_iter_, shipped.n_iter_),
        steps,
        params["max_iter"],
        train[0].shape[0],
        shipped_on,
        time.perf_counter() - start,
    )
    vectorizer = load_pickle(args.vectorizer)  # after the fit: unpickling it imports scikit-learn
    save_model(vectorizer, holdout, args.holdout_out)
    if shipped is holdout:  # the same model: the same bytes, without pickling it twice
        with atomic_path(args.out) as tmp:
            shutil.copyfile(args.holdout_out, tmp)
    else:
        save_model(vectorizer, shipped, args.out)
    log.info("saved %s and %s", args.holdout_out, args.out)


if __name__ == "__main__":
    main()
    exit_skipping_teardown()
