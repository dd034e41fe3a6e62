"""An uploaded batch of labelled products, checked before anything is appended.

Two kinds of problem. A row whose text cannot be used (too long, no designation once HTML is
stripped) is left out and reported with its reasons; the other rows go on. A problem with the
batch itself refuses the whole file, naming the line, and nothing is appended: a label that is not
one of the 27 classes, a product id twice in the file, or a product id already in data/raw (the
same product sent again). Those say the file is not what its sender meant (a shifted column, an
old export, a second send), and half of it would be a batch nobody uploaded.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from pandas.errors import EmptyDataError, ParserError, ParserWarning

from mlops_rakuten.core.challenge import label_problems, parse_labels
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.paths import X_FILE
from mlops_rakuten.text import clean_text

REQUIRED = ("designation", "description", "prdtypecode")
OPTIONAL = ("productid", "imageid")  # copied into X when given, blank otherwise (no stage reads them)
# Limits that keep one product from hogging a worker (POST /predict has the same): roomy for a
# product title and an HTML description, too small for a pasted book.
MAX_DESIGNATION_CHARS = 1_000
MAX_DESCRIPTION_CHARS = 20_000
SHOWN = 5  # problems named in a refusal; the rest are counted
# Characters some reader takes as a line end: pandas' C parser ends a row at a bare \r, Python's
# splitlines also at these. \r\n and \r become \n (quoted by the CSV writer), the rest a space;
# NUL is dropped (C readers stop at it).
_CARRIAGE_RETURN = re.compile(r"\r\n?")
_OTHER_BREAKS = re.compile("[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


class BatchRefused(InputError):
    """The file as a whole cannot be a batch: nothing is appended (the message names the lines)."""


def normalise_line_breaks(value: str) -> str:
    """``value`` with every line break a plain \\n, so any CSV reader sees the row the writer meant."""
    return _OTHER_BREAKS.sub(" ", _CARRIAGE_RETURN.sub("\n", value)).replace("\x00", "")


@dataclass
class Upload:
    received: int
    accepted: pd.DataFrame  # REQUIRED + OPTIONAL columns, prdtypecode as int; index: row number from 1
    rejects: list[dict] = field(default_factory=list)
    name: str = "upload.csv"
    lines: dict[int, int] = field(default_factory=dict)  # row number -> the file line it starts on


def record_lines(text: str) -> dict[int, int]:
    """Row number (from 1, blank lines skipped as pandas skips them) -> the line of the file it starts on."""
    reader = csv.reader(io.StringIO(text))
    next(reader, None)
    lines, row, previous_end = {}, 0, reader.line_num
    for record in reader:
        if record:
            row += 1
            lines[row] = previous_end + 1
        previous_end = reader.line_num
    return lines


def read_upload(
    text: str, name: str, required: tuple[str, ...] = REQUIRED, optional: tuple[str, ...] = OPTIONAL
) -> pd.DataFrame:
    """The uploaded CSV as strings, rows numbered from 1; InputError for a file that is not one.

    `required`/`optional`: its columns (`rakuten predictions replay` reads the same format, label optional)."""
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
    missing = [c for c in required if c not in frame.columns]
    unknown = [c for c in frame.columns if c not in required + optional]
    if missing or unknown:
        problem = f"missing column '{missing[0]}'" if missing else f"unexpected column '{unknown[0]}'"
        raise InputError(
            f"{name}: {problem} (found {list(frame.columns)}; expected {list(required)} "
            f"and optionally {list(optional)})"
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


def refuse(name: str, problems: list[tuple[int, str]]) -> BatchRefused:
    """One error for the batch: the first problems by line, the others counted."""
    problems = sorted(problems)
    shown = "; ".join(f"line {line}: {what}" for line, what in problems[:SHOWN])
    more = f"; and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
    return BatchRefused(f"{name}: {shown}{more}; nothing was added")


def check_upload(data: bytes, name: str) -> Upload:
    """Every row checked; the good ones kept, the others reported; BatchRefused for a bad batch."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: not UTF-8 text (byte {exc.start}); expected a UTF-8 CSV") from None
    frame = read_upload(text, name)
    bad_labels = label_problems(frame["prdtypecode"], name)  # in bulk: row by row cost 21x on 100,000 rows
    ids = frame["productid"] if "productid" in frame.columns else pd.Series("", frame.index)
    repeated = ids[(ids != "") & ids.duplicated(keep=False)]
    if bad_labels or len(repeated):
        lines = record_lines(text)
        problems = [
            (lines[row], f"prdtypecode {frame.at[row, 'prdtypecode']!r} is not one of the 27 class codes")
            for row in bad_labels
        ]
        first_line = {pid: lines[row] for row, pid in repeated.drop_duplicates().items()}
        problems += [
            (lines[row], f"productid {pid} appears twice (first on line {first_line[pid]})")
            for row, pid in repeated.items()
            if lines[row] != first_line[pid]
        ]
        raise refuse(name, problems)
    reasons: dict[int, list[str]] = {}
    for row, designation, description in zip(frame.index, frame["designation"], frame["description"], strict=True):
        text_problem = _text_problem(designation, description)
        if text_problem:
            reasons.setdefault(row, []).append(text_problem)
    good = frame.drop(index=list(reasons))
    accepted = good.reindex(columns=list(REQUIRED + OPTIONAL), fill_value="")
    accepted["prdtypecode"] = parse_labels(good["prdtypecode"], Path(name)) if len(good) else []
    rejects = [{"row": row, "reasons": why} for row, why in sorted(reasons.items())]
    lines = record_lines(text) if accepted["productid"].ne("").any() else {}
    return Upload(received=len(frame), accepted=accepted, rejects=rejects, name=name, lines=lines)


def check_new_ids(upload: Upload, raw_dir: Path) -> None:
    """BatchRefused when a product id of the upload is already in data/raw (the same product sent again)."""
    ids = upload.accepted["productid"]
    if not ids.ne("").any():
        return
    path = Path(raw_dir) / X_FILE
    header = next(csv.reader(io.StringIO(path.open(encoding="utf-8").readline())), [])
    if "productid" not in header:
        return
    existing = pd.read_csv(path, usecols=[0, header.index("productid")], index_col=0, dtype=str, keep_default_na=False)[
        "productid"
    ]
    known = pd.Series(existing.index, index=existing.to_numpy())
    known = known[known.index != ""]
    clash = ids[ids.isin(known.index)]
    if len(clash):
        first = known[~known.index.duplicated()]
        raise refuse(
            upload.name,
            [
                (upload.lines.get(row, row + 1), f"productid {pid} is already in data/raw (index {first[pid]})")
                for row, pid in clash.items()
            ],
        )
