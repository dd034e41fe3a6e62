"""The batch record: which rows of data/raw came from which upload, and which of them may train a model.

``data/raw/batches.jsonl`` holds one JSON object per upload (``rakuten ingest`` or ``POST /ingest``):
its id, source name, time, raw index range and row count, how many of its rows are held out, its
label screen and its status. It lives in the DVC-tracked raw folder beside the two challenge CSVs,
whose format it leaves alone, so every data version (every commit of data/raw.dvc) says which rows
came from which batch. ops/batches.py writes it, as part of the same staged commit as the rows;
this module only reads it (the ingest stage and the retrain gate), purely.

Held-out rows: from the moment a batch arrives, a fixed share of its rows (HELD_OUT_SHARE) is kept
for evaluation only. Which ones is a salted hash of the row's id (its raw index, which never changes
once appended), so the choice is the same on every machine and in every later data version: the
split stage always puts them in the test split and the train stage's refit on train + test leaves
them out, so no model, production's or a candidate's, is ever fitted on them.

Status: ``accepted`` and ``approved`` batches train models; ``quarantined`` and ``rejected`` ones
stay in data/raw (nothing is lost) but the ingest stage drops their rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_rakuten.core.errors import InputError

BATCHES_FILE = "batches.jsonl"  # in the raw folder, beside the challenge CSVs
HELD_OUT_SHARE = 0.2
HELD_OUT_SALT = "rakuten-held-out-v1"  # changing it would move rows models may already have seen
ACCEPTED, QUARANTINED, APPROVED, REJECTED = "accepted", "quarantined", "approved", "rejected"
STATUSES = (ACCEPTED, QUARANTINED, APPROVED, REJECTED)
TRAINS = (ACCEPTED, APPROVED)


@dataclass(frozen=True)
class Batch:
    id: int
    source: str
    time: str  # UTC, ISO 8601
    first_index: int  # the raw index range of its rows, both ends included
    last_index: int
    rows: int
    held_out: int  # how many of its rows are held out (is_held_out)
    status: str
    screen: dict[str, Any] | None = None  # the label screen's result; None when not screened

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_path(raw_dir: Path) -> Path:
    return Path(raw_dir) / BATCHES_FILE


def parse_batches(text: str, where: str) -> list[Batch]:
    """The batches of a record's text, oldest first; InputError naming the line that is not one."""
    batches = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            batch = Batch(**json.loads(line))
        except (ValueError, TypeError) as exc:
            raise InputError(f"{where} line {number}: not a batch record ({exc})") from None
        if batch.status not in STATUSES:
            raise InputError(f"{where} line {number}: status {batch.status!r}, expected one of {list(STATUSES)}")
        batches.append(batch)
    return batches


def read_batches(raw_dir: Path) -> list[Batch]:
    """The batches recorded in ``raw_dir``; none when it has no record (the demo data as committed)."""
    path = record_path(raw_dir)
    return parse_batches(path.read_text(encoding="utf-8"), str(path)) if path.is_file() else []


def format_batches(batches: list[Batch]) -> str:
    """The record's text: one JSON object per line, in a byte-stable form."""
    return "".join(json.dumps(b.as_dict(), ensure_ascii=False, sort_keys=True) + "\n" for b in batches)


def is_held_out(ids: Any) -> np.ndarray:
    """Per id (a raw index): whether it falls in the held-out share. The same answer forever."""
    threshold = int(HELD_OUT_SHARE * 2**64)
    return np.array(
        [
            int.from_bytes(hashlib.sha256(f"{HELD_OUT_SALT}:{int(i)}".encode()).digest()[:8], "big") < threshold
            for i in ids
        ],
        dtype=bool,
    )


def batch_of(ids: Any, batches: list[Batch]) -> np.ndarray:
    """Per id: the id of the batch whose range holds it, or -1 (a row from before any batch)."""
    ids = np.asarray(ids, dtype=np.int64)
    found = np.full(len(ids), -1, dtype=np.int64)
    for batch in batches:
        found[(ids >= batch.first_index) & (ids <= batch.last_index)] = batch.id
    return found


def held_out_rows(ids: Any, batches: list[Batch]) -> np.ndarray:
    """Per id: a batch row in the held-out share (rows from before any batch never are)."""
    in_batch = batch_of(ids, batches) >= 0
    held = np.zeros(len(in_batch), dtype=bool)
    held[in_batch] = is_held_out(np.asarray(ids)[in_batch])
    return held


def untrainable_rows(ids: Any, batches: list[Batch]) -> np.ndarray:
    """Per id: a row of a quarantined or rejected batch, which no model may be fitted on."""
    barred = [b.id for b in batches if b.status not in TRAINS]
    return np.isin(batch_of(ids, batches), barred) if barred else np.zeros(len(ids), dtype=bool)


def batch_rows(products: pd.DataFrame, batches: list[Batch]) -> dict[int, pd.DataFrame]:
    """The rows of ``products`` (indexed by raw index) per batch id, for batches that have any."""
    owner = batch_of(products.index, batches)
    return {b.id: products[owner == b.id] for b in batches if (owner == b.id).any()}
