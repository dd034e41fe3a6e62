"""Stage featurize: fit the TF-IDF extractor on the train split only, transform both splits."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from mlops_rakuten.core.atomic import dump_pickle
from mlops_rakuten.core.dataset import HELD_OUT, read_products
from mlops_rakuten.core.errors import exit_on_input_error, setup_logging
from mlops_rakuten.core.feature_files import write_features
from mlops_rakuten.core.features import build_vectorizer, make_picklable_stable
from mlops_rakuten.core.params import read_params

log = logging.getLogger("featurize")


@exit_on_input_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--train", required=True, type=Path)
    parser.add_argument("--test", required=True, type=Path)
    parser.add_argument("--train-out", required=True, type=Path, help="train matrix and labels (joblib)")
    parser.add_argument("--test-out", required=True, type=Path, help="test matrix and labels (joblib)")
    parser.add_argument(
        "--vectorizer-out", required=True, type=Path, help="fitted extractor (a standard pickle: joblib.load reads it)"
    )
    args = parser.parse_args(argv)
    setup_logging()
    params = read_params(args.params, "featurize")
    train, test = read_products(args.train), read_products(args.test)
    start = time.perf_counter()
    vectorizer = build_vectorizer(params)
    x_train = vectorizer.fit_transform(train)
    log.info(
        "fitted on %d train rows: %d features in %.1fs", x_train.shape[0], x_train.shape[1], time.perf_counter() - start
    )
    # Parallel workers help the fit; a served model predicting one product must not spawn them.
    vectorizer.set_params(tfidf__n_jobs=None)
    x_test = vectorizer.transform(test)
    write_features(x_train, train["prdtypecode"].to_numpy(), args.train_out)
    # The train stage's refit leaves the held-out rows out (no column: no batches, no flags).
    held_out = test[HELD_OUT].to_numpy(dtype=bool) if HELD_OUT in test.columns else None
    write_features(x_test, test["prdtypecode"].to_numpy(), args.test_out, held_out)
    dump_pickle(make_picklable_stable(vectorizer), args.vectorizer_out)
    log.info(
        "%d train + %d test rows -> %d x %d sparse matrices (%d non-zeros) in %.1fs",
        x_train.shape[0],
        x_test.shape[0],
        x_train.shape[0] + x_test.shape[0],
        x_train.shape[1],
        x_train.nnz + x_test.nnz,
        time.perf_counter() - start,
    )


if __name__ == "__main__":
    main()  # and the normal exit, which stops the vectorizers' worker processes
