"""Stage ingest: read and check the two challenge CSVs, join them on their index.

When the raw folder holds a batch record (core/batches.py, beside the CSVs in the ``data/raw``
dependency), the rows of quarantined and rejected batches are dropped, and a ``held_out`` column
marks the batch rows kept for evaluation. Without one the output is exactly as before.

Optionally keeps a deterministic, stratified fraction of the rows, so a sweep
over ``ingest.fraction`` draws a learning curve.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import pandas as pd

from mlops_rakuten.core.batches import Batch, held_out_rows, read_batches, untrainable_rows
from mlops_rakuten.core.challenge import X_COLUMNS, Y_COLUMNS, parse_labels, read_challenge_csv
from mlops_rakuten.core.dataset import HELD_OUT, write_products
from mlops_rakuten.core.errors import InputError, exit_on_input_error, exit_skipping_teardown, setup_logging
from mlops_rakuten.core.params import read_params
from mlops_rakuten.core.paths import X_FILE, Y_FILE

log = logging.getLogger("ingest")
__all__ = ["X_COLUMNS", "Y_COLUMNS", "join_challenge", "parse_labels", "read_challenge_csv", "sample_fraction"]


def join_challenge(x: pd.DataFrame, y: pd.DataFrame, x_path: Path, y_path: Path) -> pd.DataFrame:
    """Join X and Y; they must hold exactly the same indices."""
    if not x.index.equals(y.index):
        only_x = x.index.difference(y.index)
        only_y = y.index.difference(x.index)
        detail = (
            f"index {only_x[0]} only in {x_path.name}"
            if len(only_x)
            else (f"index {only_y[0]} only in {y_path.name}" if len(only_y) else "same indices in a different order")
        )
        raise InputError(f"{x_path} and {y_path}: indices do not match ({detail})")
    products = x.copy()
    products["prdtypecode"] = parse_labels(y["prdtypecode"], y_path)
    return products


def sample_fraction(products: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """A stratified ``fraction`` of the rows (at least 2 per class), in index order."""
    if fraction >= 1.0:
        return products
    keep = []
    for _, group in products.groupby("prdtypecode", sort=True):
        n = max(2, min(len(group), round(len(group) * fraction)))
        keep.extend(group.sample(n=n, random_state=seed).index)
    return products.loc[products.index.isin(keep)]


def apply_batches(products: pd.DataFrame, batches: list[Batch]) -> pd.DataFrame:
    """Without the rows of batches that may not train; with the held-out mark. Unchanged without batches."""
    if not batches:
        return products
    kept = products[~untrainable_rows(products.index, batches)]
    return kept.assign(**{HELD_OUT: held_out_rows(kept.index, batches)})


@exit_on_input_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--x", required=True, type=Path, help=X_FILE)
    parser.add_argument("--y", required=True, type=Path, help=Y_FILE)
    parser.add_argument("--out", required=True, type=Path, help="joined product table (CSV)")
    args = parser.parse_args(argv)
    setup_logging()
    params = read_params(args.params, "ingest")
    start = time.perf_counter()
    x = read_challenge_csv(args.x, X_COLUMNS)
    y = read_challenge_csv(args.y, Y_COLUMNS)
    batches = read_batches(args.x.parent)
    joined = apply_batches(join_challenge(x, y, args.x, args.y), batches)
    products = sample_fraction(joined, params["fraction"], params["seed"])
    write_products(products, args.out)
    log.info(
        "%d rows read, %d kept (%d of quarantined or rejected batches dropped; fraction %s), %d classes -> %s in %.1fs",
        len(x),
        len(products),
        len(x) - len(joined),
        params["fraction"],
        products["prdtypecode"].nunique(),
        args.out,
        time.perf_counter() - start,
    )


if __name__ == "__main__":
    main()
    exit_skipping_teardown()
