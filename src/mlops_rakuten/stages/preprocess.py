"""Stage preprocess: clean product text, drop rows with no usable text and exact duplicates."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_rakuten.core.dataset import COLUMNS, read_products, write_products
from mlops_rakuten.core.errors import InputError, exit_on_input_error, exit_skipping_teardown, setup_logging
from mlops_rakuten.core.params import read_params
from mlops_rakuten.text import clean_text

log = logging.getLogger("preprocess")


def preprocess(products: pd.DataFrame, params: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Cleaned rows and the number dropped per reason."""
    cleaned = products.assign(
        designation=products["designation"].map(clean_text),
        description=products["description"].map(clean_text),
    )
    text_chars = cleaned["designation"].str.len() + cleaned["description"].str.len()
    too_short = text_chars < params["min_text_chars"]
    cleaned = cleaned[~too_short]
    # On the product's own columns: a held-out copy of an earlier product is a duplicate too.
    duplicated = (
        cleaned.duplicated(subset=COLUMNS, keep="first")
        if params["drop_duplicates"]
        else pd.Series(False, cleaned.index)
    )
    cleaned = cleaned[~duplicated]
    dropped = {"no usable text": int(too_short.sum()), "exact duplicate": int(duplicated.sum())}
    return cleaned, dropped


@exit_on_input_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    setup_logging()
    params = read_params(args.params, "preprocess")
    start = time.perf_counter()
    products = read_products(args.input)
    cleaned, dropped = preprocess(products, params)
    if cleaned.empty:
        raise InputError(f"{args.input}: no rows left after cleaning (dropped {dropped})")
    write_products(cleaned, args.out)
    reasons = ", ".join(f"{n} {why}" for why, n in dropped.items())
    log.info(
        "%d rows in, %d out (dropped: %s) -> %s in %.1fs",
        len(products),
        len(cleaned),
        reasons,
        args.out,
        time.perf_counter() - start,
    )


if __name__ == "__main__":
    main()
    exit_skipping_teardown()
