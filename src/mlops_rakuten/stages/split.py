"""Stage split: stratified train/test split of the cleaned products.

Products whose id is in the frozen evaluation set (data/eval/frozen_test_ids.csv, written by
`rakuten retrain`) always go to the test split, and the rest is split as usual: however many
products are added later, a model fitted on the train split never sees them, so models built
from different data can be compared on the same products. An empty list changes nothing.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

from mlops_rakuten.core.dataset import HELD_OUT, read_products, write_products
from mlops_rakuten.core.errors import InputError, exit_on_input_error, exit_skipping_teardown, setup_logging
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


def read_frozen_ids(path: Path | None) -> set[int]:
    """The ids of the frozen evaluation set (one ``id`` column); empty without a file or rows."""
    if path is None or not path.is_file():
        return set()
    frozen = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(frozen.columns) != ["id"] or not frozen["id"].str.fullmatch(r"\d+").all():
        raise InputError(f"{path}: expected one column 'id' of product ids (whole numbers)")
    return set(frozen["id"].astype(int))


def split_with_frozen(
    products: pd.DataFrame, params: dict[str, Any], source: Path, frozen: set[int]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``split`` of the products outside ``frozen`` and the held-out ones, which are added to the test split."""
    held = products.index.isin(list(frozen))
    if HELD_OUT in products.columns:
        held |= products[HELD_OUT].to_numpy(dtype=bool)
    if not held.any():
        return split(products, params, source)
    train, test = split(products[~held], params, source)
    return train, pd.concat([test, products[held]]).sort_index()


@exit_on_input_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--train", required=True, type=Path)
    parser.add_argument("--test", required=True, type=Path)
    parser.add_argument("--frozen-test", type=Path, help="ids always put in the test split (CSV, column id)")
    args = parser.parse_args(argv)
    setup_logging()
    params = read_params(args.params, "split")
    products = read_products(args.input)
    frozen = read_frozen_ids(args.frozen_test)
    train, test = split_with_frozen(products, params, args.input, frozen)
    write_products(train, args.train)
    write_products(test, args.test)
    log.info(
        "%d rows -> %d train, %d test (test_size %s, %d classes; %d frozen evaluation ids, %d held-out batch rows)",
        len(products),
        len(train),
        len(test),
        params["test_size"],
        products["prdtypecode"].nunique(),
        len(frozen),
        int(products[HELD_OUT].sum()) if HELD_OUT in products.columns else 0,
    )


if __name__ == "__main__":
    main()
    exit_skipping_teardown()
