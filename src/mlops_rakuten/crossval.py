"""Cross-validate the default params on a data set in the challenge format.

Stratified k-fold, repeated over several seeds, with the pipeline's own
functions (ingest checks, cleaning, feature extractor, classifier), so the
score measures exactly what ``dvc repro`` would build from ``params.yaml``.
Used to choose params on a small real sample without overfitting one split.
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

from mlops_rakuten.errors import exit_on_input_error
from mlops_rakuten.features import build_vectorizer
from mlops_rakuten.params import read_params
from mlops_rakuten.stages.ingest import X_COLUMNS, Y_COLUMNS, join_challenge, read_challenge_csv
from mlops_rakuten.stages.preprocess import preprocess
from mlops_rakuten.stages.train import fit_classifier


def load_products(folder: Path, preprocess_params: dict[str, Any]) -> pd.DataFrame:
    x_path, y_path = folder / "X_train_update.csv", folder / "Y_train_CVw08PX.csv"
    products = join_challenge(read_challenge_csv(x_path, X_COLUMNS), read_challenge_csv(y_path, Y_COLUMNS),
                              x_path, y_path)
    return preprocess(products, preprocess_params)[0]


def cross_validate(products: pd.DataFrame, featurize: dict[str, Any], model: dict[str, Any],
                   folds: int = 5, seeds: tuple[int, ...] = (0, 1, 2)) -> np.ndarray:
    """Weighted F1 of every fold of every repetition."""
    labels = products["prdtypecode"].to_numpy()
    scores = []
    for seed in seeds:
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(products, labels):
            vectorizer = build_vectorizer(featurize)
            classifier = fit_classifier(vectorizer.fit_transform(products.iloc[train]), labels[train], model)
            predicted = classifier.predict(vectorizer.transform(products.iloc[test]))
            scores.append(f1_score(labels[test], predicted, average="weighted"))
    return np.array(scores)


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
    scores = cross_validate(products, read_params(args.params, "featurize"), read_params(args.params, "model"),
                            args.folds, tuple(range(args.seeds)))
    print(f"{len(products)} products from {args.data}, {args.seeds} x stratified {args.folds}-fold CV "
          f"with {args.params}: weighted F1 {scores.mean():.4f} ± {scores.std():.4f} "
          f"(min {scores.min():.4f}, max {scores.max():.4f}) in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
