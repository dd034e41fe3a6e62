"""Reading the prediction log back: rows of a time window, and their export in the /ingest CSV format."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from mlops_rakuten.core.atomic import atomic_open
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.monitoring.prediction_log import FILE_GLOB

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([mhdw])$")
_UNIT = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# The /ingest upload's columns (ops/upload.py REQUIRED), label last and left empty.
INGEST_COLUMNS = ("designation", "description", "prdtypecode")


def since_time(value: str, now: datetime | None = None) -> datetime:
    """``30m``, ``12h``, ``1d``, ``2w`` before now, or an ISO 8601 time (UTC unless it says otherwise)."""
    now = now or datetime.now(timezone.utc)
    span = _SPAN.match(value.strip())
    if span:
        return now - timedelta(**{_UNIT[span.group(2)]: float(span.group(1))})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InputError(
            f"--since {value!r}: expected a span such as 30m, 12h, 1d, 2w or an ISO time such as 2026-01-31T12:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass
class Window:
    rows: list[dict[str, Any]]
    since: datetime
    files: int
    unreadable_lines: int  # cut by a full disk or a crash mid-write


def unreadable_note(lines: int) -> str:
    """What a window's summary says of its unreadable lines."""
    return f"{lines} unreadable line(s) of the log left out (cut by a full disk or a crash mid-write)"


def read_window(folder: Path, since: datetime) -> Window:
    """Every logged prediction at or after ``since``, oldest first."""
    if not folder.is_dir():
        raise InputError(
            f"{folder}: no prediction log here (the server writes it to RAKUTEN_PREDICTION_LOG_DIR, "
            f"default STATE_DIR/predictions; is RAKUTEN_PREDICTION_LOG off?)"
        )
    rows, bad, files = [], 0, 0
    cutoff = since.timestamp()
    for path in sorted(folder.glob(FILE_GLOB)):
        try:
            if path.stat().st_mtime < cutoff:
                continue  # nothing in it was written after since
        except OSError:
            continue
        files += 1
        for row in _lines(path):
            if row is None:
                bad += 1
            elif row_time(row) >= since:
                rows.append(row)
    rows.sort(key=lambda row: row["time"])
    return Window(rows, since, files, bad)


def _lines(path: Path) -> Iterator[dict[str, Any] | None]:
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                yield None
                continue
            yield row if _is_prediction(row) else None


def _is_prediction(row: Any) -> bool:
    """What drift reads of a row is there (a line cut mid-write can still be valid JSON)."""
    return (
        isinstance(row, dict)
        and isinstance(row.get("time"), str)
        and isinstance(row.get("model_version"), str)
        and isinstance(row.get("prdtypecode"), int)
        and isinstance(row.get("score"), (int, float))
        and not isinstance(row.get("score"), bool)
    )


def row_time(row: dict[str, Any]) -> datetime:
    try:
        moment = datetime.fromisoformat(row["time"])
    except (TypeError, ValueError):
        return datetime.min.replace(tzinfo=timezone.utc)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)  # as --since reads a naive time


def export_for_ingest(window: Window, target: Path) -> tuple[int, int]:
    """The window's products as an /ingest CSV with an empty prdtypecode; (written, skipped: no text logged)."""
    written = skipped = 0
    with atomic_open(target, newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(INGEST_COLUMNS)
        for row in window.rows:
            if "designation" not in row:  # logged in features mode
                skipped += 1
                continue
            writer.writerow([row["designation"], row.get("description", ""), ""])
            written += 1
    return written, skipped
