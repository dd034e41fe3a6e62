"""Stage split: stratified train/test split of the cleaned products."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

from mlops_rakuten.core.dataset import read_products, write_products
from mlops_rakuten.core.errors import InputError, exit_skipping_teardown, exit_on_input_error, setup_logging
from mlops_rakuten.core.params import read_params

log = logging.getLogger("split")


def split(products: pd.DataFrame, params: dict[str, Any], source: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified split; every class needs 2 rows and a place in the test set."""
    counts = products["prdtypecode"].value_counts()
    rare = counts[counts < 2]
    if len(rare):
        raise InputError(
            f"{source}: class {rare.index[0]} has {rare.iloc[0]} row(s); "
            "a stratified split needs at least 2 rows per class"
        )
    n_test = int(-(-len(products) * params["test_size"] // 1))  # ceil, as scikit-learn counts it
    if n_test < len(counts) or len(products) - n_test < len(counts):
        raise InputError(
            f"{source}: {len(products)} rows and split.test_size={params['test_size']} give {n_test} test rows "
            f"for {len(counts)} classes; expected at least one row per class on each side"
        )
    train, test = train_test_split(
        products, test_size=params["test_size"], random_state=params["seed"], stratify=products["prdtypecode"]
    )
    return train.sort_index(), test.sort_index()


@exit_on_input_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--train", required=True, type=Path)
    parser.add_argument("--test", required=True, type=Path)
    args = parser.parse_args(argv)
    setup_logging()
    params = read_params(args.params, "split")
    products = read_products(args.input)
    train, test = split(products, params, args.input)
    write_products(train, args.train)
    write_products(test, args.test)
    log.info("%d rows -> %d train, %d test (test_size %s, %d classes)",
             len(products), len(train), len(test), params["test_size"], products["prdtypecode"].nunique())


if __name__ == "__main__":
    main()
    exit_skipping_teardown()
