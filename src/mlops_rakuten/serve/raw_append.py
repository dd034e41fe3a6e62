"""New labelled products: check an uploaded CSV row by row, append the good rows to the raw challenge CSVs.

The two raw files must change together (the ingest stage refuses X and Y with
different indices), and one rename cannot replace two files. So the complete
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
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from pandas.errors import EmptyDataError, ParserError, ParserWarning

from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.paths import X_FILE, Y_FILE
from mlops_rakuten.serve.settings import MAX_DESCRIPTION_CHARS, MAX_DESIGNATION_CHARS
from mlops_rakuten.stages.ingest import X_COLUMNS, Y_COLUMNS, label_problems, parse_labels, read_challenge_csv
from mlops_rakuten.text import clean_text

REQUIRED = ("designation", "description", "prdtypecode")
OPTIONAL = ("productid", "imageid")  # copied into X when given, blank otherwise (no stage reads them)
COMMIT = "COMMIT"
NOTE = "NOTE.json"  # what the ingest that staged the rows wants remembered once they are recorded
# Characters some reader takes as a line end: pandas' C parser ends a row at a bare \r, Python's
# splitlines also at these. \r\n and \r become \n (quoted by the CSV writer), the rest a space;
# NUL is dropped (C readers stop at it).
_CARRIAGE_RETURN = re.compile(r"\r\n?")
_OTHER_BREAKS = re.compile("[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


class StagingCheckFailed(Exception):
    """The staged raw files do not read back as written: nothing was committed."""


def normalise_line_breaks(value: str) -> str:
    """``value`` with every line break a plain \\n, so any CSV reader sees the row the writer meant."""
    return _OTHER_BREAKS.sub(" ", _CARRIAGE_RETURN.sub("\n", value)).replace("\x00", "")


@dataclass
class Upload:
    received: int
    accepted: pd.DataFrame  # REQUIRED + OPTIONAL columns, prdtypecode as int
    rejects: list[dict] = field(default_factory=list)


def read_upload(data: bytes, name: str) -> pd.DataFrame:
    """The uploaded CSV as strings, rows numbered from 1; InputError for a file that is not one."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: not UTF-8 text (byte {exc.start}); expected a UTF-8 CSV") from None
    try:
        # index_col=False: pandas otherwise takes a first row with one field too many as having an index
        # column, and its first field (a title cut at a comma) silently vanishes; the warning it gives
        # instead is made an error. Longer rows further down are a ParserError naming their line.
        with warnings.catch_warnings():
            warnings.simplefilter("error", ParserWarning)
            frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, index_col=False)
    except (EmptyDataError, ParserError) as exc:
        raise InputError(f"{name}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    except ParserWarning:
        raise InputError(f"{name}: not a readable CSV ({_longer_than_header(text)})") from None
    if len(frame.columns) and (frame.columns[0] == "" or str(frame.columns[0]).startswith("Unnamed: 0")):
        frame = frame.iloc[:, 1:]  # an index column, as in the challenge files: new indices are assigned
    missing = [c for c in REQUIRED if c not in frame.columns]
    unknown = [c for c in frame.columns if c not in REQUIRED + OPTIONAL]
    if missing or unknown:
        problem = f"missing column '{missing[0]}'" if missing else f"unexpected column '{unknown[0]}'"
        raise InputError(
            f"{name}: {problem} (found {list(frame.columns)}; expected {list(REQUIRED)} "
            f"and optionally {list(OPTIONAL)})"
        )
    if frame.empty:
        raise InputError(f"{name}: no rows (expected at least one product under the header)")
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    return frame.apply(lambda column: column.map(normalise_line_breaks))


def _longer_than_header(text: str) -> str:
    """Where the first row with more fields than the header is, in the words of pandas' own error."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    for record in reader:
        if len(record) > len(header):
            return f"Expected {len(header)} fields in line {reader.line_num}, saw {len(record)}"
    return f"a row has more fields than the header's {len(header)}"


def _text_problem(designation: str, description: str) -> str | None:
    if len(designation) > MAX_DESIGNATION_CHARS:
        return f"designation is longer than {MAX_DESIGNATION_CHARS} characters"
    if len(description) > MAX_DESCRIPTION_CHARS:
        return f"description is longer than {MAX_DESCRIPTION_CHARS} characters"
    if not clean_text(designation):
        return "designation is empty (no text once HTML is stripped)"
    return None


def check_upload(data: bytes, name: str) -> Upload:
    """Every row checked; the good ones kept, the others reported with their reasons."""
    frame = read_upload(data, name)
    reasons: dict[int, list[str]] = {}
    for row, problem in label_problems(frame["prdtypecode"], name).items():
        reasons.setdefault(row, []).append(problem)
    for row, designation, description in zip(frame.index, frame["designation"], frame["description"], strict=True):
        text_problem = _text_problem(designation, description)
        if text_problem:
            reasons.setdefault(row, []).append(text_problem)
    good = frame.drop(index=list(reasons))
    accepted = good.reindex(columns=list(REQUIRED + OPTIONAL), fill_value="")
    accepted["prdtypecode"] = parse_labels(good["prdtypecode"], Path(name)) if len(good) else []
    rejects = [{"row": row, "reasons": why} for row, why in sorted(reasons.items())]
    return Upload(received=len(frame), accepted=accepted, rejects=rejects)


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
    for name in (X_FILE, Y_FILE):
        if (staging / name).exists():  # absent once renamed: the crash came after it
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


def append_products(raw_dir: Path, staging: Path, products: pd.DataFrame, note: dict | None = None) -> tuple[int, int]:
    """Append ``products`` (as returned by check_upload) with new indices; the first and last index.

    ``note`` (with the indices added) is committed with the rows, as ``staging/NOTE``: whoever
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
    staging.mkdir(parents=True)
    try:
        _stage_file(raw_dir / X_FILE, staging / X_FILE, x_rows)
        _stage_file(raw_dir / Y_FILE, staging / Y_FILE, y_rows)
        check_staged(staging, first, products)
        if note is not None:
            with open(staging / NOTE, "w", encoding="utf-8") as handle:
                json.dump({**note, "first_index": first, "last_index": indices[-1]}, handle)
                handle.flush()
                os.fsync(handle.fileno())
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    with open(staging / COMMIT, "w") as marker:
        marker.flush()
        os.fsync(marker.fileno())
    _fsync_dir(staging)
    recover(raw_dir, staging)  # the renames, exactly as after a crash
    return first, indices[-1]
