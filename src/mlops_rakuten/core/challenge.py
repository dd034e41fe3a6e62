"""The challenge's two CSV files (X: designation, description; Y: prdtypecode), read and checked.

One reader for everyone: the ingest stage, the staged append of new batches (ops/raw_append.py),
which reads its staged files back exactly as the stage will, and the cross-validation tool.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pandas.errors import EmptyDataError, ParserError

from mlops_rakuten.core.categories import CLASSES
from mlops_rakuten.core.errors import InputError

X_COLUMNS = ["designation", "description"]
Y_COLUMNS = ["prdtypecode"]


def read_challenge_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    """Read one challenge CSV (unnamed integer index first); check its columns and index."""
    if not path.is_file():
        raise InputError(f"{path}: file not found (expected the challenge CSV with columns {columns})")
    try:
        frame = pd.read_csv(path, index_col=0, keep_default_na=False, na_values={"prdtypecode": [""]}, dtype=str)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}); expected a UTF-8 CSV") from None
    except (EmptyDataError, ParserError) as exc:
        raise InputError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    for column in columns:
        if column not in frame.columns:
            raise InputError(f"{path}: missing column '{column}' (found {list(frame.columns)}, expected {columns})")
    if frame.empty:  # caught here, so an empty dataset never reaches dvc.lock as this stage's output
        raise InputError(f"{path}: a header and no rows (expected at least one product)")
    try:
        frame.index = frame.index.astype("int64")
    except (TypeError, ValueError):
        raise InputError(f"{path}: first column must be the integer row index") from None
    if frame.index.has_duplicates:
        dup = frame.index[frame.index.duplicated()][0]
        raise InputError(f"{path}: index {dup} appears more than once (expected unique row indices)")
    return frame[columns]


def label_problems(labels: pd.Series, where: str) -> dict[int, str]:
    """Row -> why its prdtypecode is refused (not an integer, or not one of the classes); {} if none is.

    In bulk: checking row by row made one bad label in 100,000 rows cost 21x the check of a clean file.
    """
    numeric = pd.to_numeric(labels, errors="coerce")
    not_integer = ~np.isfinite(numeric.to_numpy(dtype="float64")) | (numeric != numeric.round()).to_numpy()
    unknown = ~not_integer & ~numeric.isin(CLASSES).to_numpy()
    problems = {
        row: f"{where}: prdtypecode at index {row} is {value!r}, expected an integer class code"
        for row, value in zip(labels.index[not_integer], labels[not_integer], strict=True)
    }
    problems.update(
        {
            row: f"{where}: prdtypecode {int(code)} is not one of the 27 known class codes"
            for row, code in zip(labels.index[unknown], numeric[unknown], strict=True)
        }
    )
    return problems


def parse_labels(labels: pd.Series, path: Path) -> pd.Series:
    """prdtypecode as int64; InputError naming the first bad row."""
    problems = label_problems(labels, str(path))
    if problems:
        raise InputError(problems[min(problems)])
    return pd.to_numeric(labels).astype("int64")
