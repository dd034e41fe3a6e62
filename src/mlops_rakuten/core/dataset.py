"""The product table passed between stages: index, designation, description, prdtypecode."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlops_rakuten.core.atomic import atomic_path
from mlops_rakuten.core.errors import InputError

COLUMNS = ["designation", "description", "prdtypecode"]


def read_products(path: str | Path) -> pd.DataFrame:
    """Read a product table written by ``write_products``; InputError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found (expected a product table from the previous stage)")
    frame = pd.read_csv(
        path,
        index_col=0,
        keep_default_na=False,
        dtype={"designation": str, "description": str},
    )
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column '{missing[0]}' (expected columns {COLUMNS})")
    if frame.empty:
        raise InputError(f"{path}: no rows (expected at least one product)")
    return frame[COLUMNS]


def write_products(frame: pd.DataFrame, path: str | Path) -> None:
    """Write the table atomically, in a byte-stable CSV form."""
    with atomic_path(path) as tmp:
        frame[COLUMNS].to_csv(tmp, index=True, lineterminator="\n")
