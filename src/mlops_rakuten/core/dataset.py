"""The product table passed between stages: index, designation, description, prdtypecode.

Once data/raw holds uploaded batches, a fourth column ``held_out`` (0/1) marks the batch rows kept for
evaluation (core/batches.py): the split stage puts them in the test split, the train stage's refit
leaves them out. Without batches the column is absent and the tables are byte for byte as before.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlops_rakuten.core.atomic import atomic_path
from mlops_rakuten.core.errors import InputError

COLUMNS = ["designation", "description", "prdtypecode"]
HELD_OUT = "held_out"


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
    if HELD_OUT in frame.columns:
        return frame[COLUMNS].assign(**{HELD_OUT: frame[HELD_OUT].astype(bool)})
    return frame[COLUMNS]


def write_products(frame: pd.DataFrame, path: str | Path) -> None:
    """Write the table atomically, in a byte-stable CSV form (with ``held_out`` as 0/1 when the frame has it)."""
    columns = frame[COLUMNS]
    if HELD_OUT in frame.columns:
        columns = columns.assign(**{HELD_OUT: frame[HELD_OUT].astype(int)})
    with atomic_path(path) as tmp:
        columns.to_csv(tmp, index=True, lineterminator="\n")
