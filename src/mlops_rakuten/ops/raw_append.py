"""The staged append: new rows and their batch's record line added to data/raw, all or nothing.

The two raw files must change together (the ingest stage refuses X and Y with
different indices), and with them the batch record (core/batches.py) that says
where the rows came from; one rename cannot replace three files. So the complete
new files are first written and fsynced into a staging folder, then a COMMIT
marker is written, then each is renamed over its original. A crash before the
marker leaves the raw data untouched (the staging folder is discarded); a
crash after it is finished by ``recover`` on the next start or ingest. No
reader ever sees a half-written file: each rename swaps a whole file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import pandas as pd

from mlops_rakuten.core.batches import BATCHES_FILE, Batch
from mlops_rakuten.core.challenge import X_COLUMNS, Y_COLUMNS, read_challenge_csv
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.paths import X_FILE, Y_FILE
from mlops_rakuten.ops.batches import Arrival, with_new_batch
from mlops_rakuten.ops.upload import OPTIONAL

COMMIT = "COMMIT"
NOTE = "NOTE.json"  # what the ingest that staged the rows wants remembered once they are recorded
STAGED = (X_FILE, Y_FILE, BATCHES_FILE)  # renamed in this order; the record last, once its rows are in


class StagingCheckFailed(Exception):
    """The staged raw files do not read back as written: nothing was committed."""


def _next_index(raw_dir: Path) -> int:
    """One past the largest index, which X and Y must share."""
    last = []
    for name in (X_FILE, Y_FILE):
        path = raw_dir / name
        if not path.is_file():
            raise InputError(f"{path}: file not found (run `make data` or `dvc pull` first)")
        index = pd.read_csv(path, usecols=[0], dtype=str, keep_default_na=False).iloc[:, 0]
        last.append(int(pd.to_numeric(index).max()) if len(index) else -1)
    if last[0] != last[1]:
        raise InputError(f"{raw_dir}: {X_FILE} and {Y_FILE} end at different indices ({last[0]} vs {last[1]})")
    return last[0] + 1


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _stage_file(source: Path, target: Path, rows: list[list]) -> None:
    """``target`` = ``source``'s bytes followed by ``rows``, flushed to disk."""
    shutil.copyfile(source, target)
    with open(target, "r+b") as handle:
        text = io.StringIO()
        if handle.seek(0, os.SEEK_END):
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":  # a file saved without a final newline: keep its last row whole
                text.write("\n")
        csv.writer(text, lineterminator="\n").writerows(rows)
        handle.write(text.getvalue().encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())


def check_staged(staging: Path, first: int, products: pd.DataFrame) -> None:
    """The staged X and Y, read as the ingest stage reads them, end with exactly ``products``."""
    try:
        x = read_challenge_csv(staging / X_FILE, X_COLUMNS)
        y = read_challenge_csv(staging / Y_FILE, Y_COLUMNS)
    except InputError as exc:
        problems = [str(exc)]
    else:
        problems = _read_back_differences(x, y, range(first, first + len(products)), products)
    if problems:
        raise StagingCheckFailed(
            f"the staged raw files do not read back as written ({'; '.join(problems)}); data/raw was left unchanged"
        )


def _read_back_differences(x: pd.DataFrame, y: pd.DataFrame, new: range, products: pd.DataFrame) -> list[str]:
    if not x.index.equals(y.index):
        return [f"{X_FILE} has {len(x)} rows and {Y_FILE} {len(y)}, or their indices differ"]
    if list(x.index[-len(new) :]) != list(new) or x.index.max() != new[-1]:
        return [f"the last {len(new)} rows are not indices {new[0]}..{new[-1]}"]
    tail = x.loc[list(new)]
    problems = [
        f"column {column!r} of the new rows reads back differently"
        for column in X_COLUMNS
        if list(tail[column]) != list(products[column])
    ]
    if list(y.loc[list(new), "prdtypecode"].astype("int64")) != list(products["prdtypecode"].astype("int64")):
        problems.append("prdtypecode of the new rows reads back differently")
    return problems


def recover(raw_dir: Path, staging: Path) -> bool:
    """Finish the renames of a committed append, or drop one that was not committed.

    True when a committed append is in place but not yet recorded: the caller runs
    ``dvc add`` and then ``recorded``.
    """
    if not staging.exists():
        return False
    if not (staging / COMMIT).exists():
        shutil.rmtree(staging)
        return False
    for name in STAGED:
        if (staging / name).exists():  # absent once renamed (or never staged): the crash came after it
            os.replace(staging / name, raw_dir / name)
    _fsync_dir(raw_dir)
    return True


def staged_note(staging: Path) -> dict | None:
    """The ``note`` the append in ``staging`` was committed with, if any."""
    path = staging / NOTE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def recorded(staging: Path) -> None:
    """``dvc add`` recorded the appended files: the append is complete."""
    shutil.rmtree(staging, ignore_errors=True)


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def append_products(
    raw_dir: Path, staging: Path, products: pd.DataFrame, note: dict | None = None, arrival: Arrival | None = None
) -> tuple[int, int, Batch | None]:
    """Append ``products`` (as check_upload returns them) with new indices; the first and last index, the batch.

    With ``arrival``, the batch record gains the batch of these rows, committed with them. ``note``
    (with the indices and the batch added) is committed with the rows, as ``staging/NOTE``: whoever
    records the append finds it there, even after a crash. Leaves the staging folder for
    ``recorded`` to remove once ``dvc add`` has run.
    """
    recover(raw_dir, staging)  # an earlier append's files, if any, are recorded with these
    shutil.rmtree(staging, ignore_errors=True)
    first = _next_index(raw_dir)
    indices = range(first, first + len(products))
    x_rows = [
        [i, d, s, p, m]
        for i, d, s, p, m in zip(
            indices, *(products[c] for c in ("designation", "description", *OPTIONAL)), strict=True
        )
    ]
    y_rows = [[i, int(code)] for i, code in zip(indices, products["prdtypecode"], strict=True)]
    batch, record = with_new_batch(raw_dir, arrival, first, indices[-1]) if arrival else (None, None)
    staging.mkdir(parents=True)
    try:
        _stage_file(raw_dir / X_FILE, staging / X_FILE, x_rows)
        _stage_file(raw_dir / Y_FILE, staging / Y_FILE, y_rows)
        check_staged(staging, first, products)
        if record is not None:
            _write_synced(staging / BATCHES_FILE, record)
        if note is not None:
            extra = {"first_index": first, "last_index": indices[-1], "batch": batch and batch.as_dict()}
            _write_synced(staging / NOTE, json.dumps({**note, **extra}))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    with open(staging / COMMIT, "w") as marker:
        marker.flush()
        os.fsync(marker.fileno())
    _fsync_dir(staging)
    recover(raw_dir, staging)  # the renames, exactly as after a crash
    return first, indices[-1], batch
