"""Cross-validate the default params on a data set in the challenge format.

Stratified k-fold, repeated over several seeds. In each fold the other folds
play ``data/raw`` and go through the pipeline's own functions (split,
extractor, hold-out and shipped classifiers), so the score on the left-out
fold measures exactly the models ``dvc repro`` would build from
``params.yaml``. Used to choose params on a small real sample without
overfitting one split.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from mlops_rakuten.core.errors import exit_on_input_error
from mlops_rakuten.core.features import build_vectorizer
from mlops_rakuten.core.params import read_params
from mlops_rakuten.core.paths import X_FILE, Y_FILE
from mlops_rakuten.stages.ingest import X_COLUMNS, Y_COLUMNS, join_challenge, read_challenge_csv
from mlops_rakuten.stages.preprocess import preprocess
from mlops_rakuten.stages.split import split
from mlops_rakuten.stages.train import fit_holdout_and_shipped


def load_products(folder: Path, preprocess_params: dict[str, Any]) -> pd.DataFrame:
    x_path, y_path = folder / X_FILE, folder / Y_FILE
    products = join_challenge(
        read_challenge_csv(x_path, X_COLUMNS), read_challenge_csv(y_path, Y_COLUMNS), x_path, y_path
    )
    return preprocess(products, preprocess_params)[0]


def cross_validate(
    products: pd.DataFrame, params: dict[str, dict[str, Any]], folds: int = 5, seeds: tuple[int, ...] = (0, 1, 2)
) -> dict[str, np.ndarray]:
    """Weighted F1 of the hold-out and the shipped model on every fold of every repetition.

    ``params`` holds the ``split``, ``featurize`` and ``model`` sections.
    """
    labels = products["prdtypecode"].to_numpy()
    scores: dict[str, list[float]] = {"holdout": [], "shipped": []}
    for seed in seeds:
        for rest, left_out in StratifiedKFold(folds, shuffle=True, random_state=seed).split(products, labels):
            train, test = split(products.iloc[rest], params["split"], Path(f"fold of seed {seed}"))
            vectorizer = build_vectorizer(params["featurize"])
            fitted = fit_holdout_and_shipped(
                (vectorizer.fit_transform(train), train["prdtypecode"].to_numpy()),
                (vectorizer.transform(test), test["prdtypecode"].to_numpy()),
                params["model"],
            )
            x_left_out = vectorizer.transform(products.iloc[left_out])
            for name, classifier in zip(scores, fitted, strict=True):
                scores[name].append(f1_score(labels[left_out], classifier.predict(x_left_out), average="weighted"))
    return {name: np.array(values) for name, values in scores.items()}


def summary(scores: np.ndarray) -> str:
    return f"{scores.mean():.4f} ± {scores.std():.4f} (min {scores.min():.4f}, max {scores.max():.4f})"


@exit_on_input_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, type=Path, help="folder with the two challenge CSVs")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3, help="repetitions with different fold shuffles")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    products = load_products(args.data, read_params(args.params, "preprocess"))
    params = {section: read_params(args.params, section) for section in ("split", "featurize", "model")}
    scores = cross_validate(products, params, args.folds, tuple(range(args.seeds)))
    print(
        f"{len(products)} products from {args.data}, {args.seeds} x stratified {args.folds}-fold CV "
        f"with {args.params} ({time.perf_counter() - start:.0f} s), weighted F1 on the left-out fold:\n"
        f"  shipped model (models/model.joblib)          {summary(scores['shipped'])}\n"
        f"  hold-out model (models/holdout_model.joblib) {summary(scores['holdout'])}"
    )


if __name__ == "__main__":
    main()
