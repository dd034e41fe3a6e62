"""Writing the batch record (core/batches.py reads it): a new batch with each ingest, a status change
with `rakuten batches approve|reject`.

A new batch's line is staged with the rows it describes (ops/raw_append.py) and renamed into
data/raw with them after the same COMMIT marker: a crash leaves both or neither. A status change
rewrites the record atomically (core/atomic.py) and records data/raw with `dvc add`, under the
project lock, as an ingest does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlops_rakuten.core.atomic import atomic_open
from mlops_rakuten.core.batches import (
    ACCEPTED,
    APPROVED,
    QUARANTINED,
    REJECTED,
    Batch,
    format_batches,
    is_held_out,
    read_batches,
    record_path,
)
from mlops_rakuten.core.errors import InputError

# Which status a decision may change, to what. Quarantine is the retrain's second screen of a batch
# still accepted (monitoring/batch_screen.py); people approve or reject.
DECISIONS = {
    APPROVED: (QUARANTINED, REJECTED),
    REJECTED: (QUARANTINED, ACCEPTED, APPROVED),
    QUARANTINED: (ACCEPTED,),
}


@dataclass(frozen=True)
class Arrival:
    """What an upload knows about its batch before its rows have indices."""

    source: str
    time: str
    status: str = ACCEPTED
    screen: dict[str, Any] | None = None


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_source(key: str | None, time: str) -> str:
    """A batch's source when the uploader names none: its idempotency key, else its arrival time."""
    return key or f"upload-{time}"


def with_new_batch(raw_dir: Path, arrival: Arrival, first: int, last: int) -> tuple[Batch, str]:
    """The batch of rows ``first``..``last`` and the whole record's text with it appended."""
    batches = read_batches(raw_dir)
    batch = Batch(
        id=max((b.id for b in batches), default=0) + 1,
        source=arrival.source,
        time=arrival.time,
        first_index=first,
        last_index=last,
        rows=last - first + 1,
        held_out=int(is_held_out(range(first, last + 1)).sum()),
        status=arrival.status,
        screen=arrival.screen,
    )
    return batch, format_batches([*batches, batch])


def find(raw_dir: Path, batch_id: int) -> Batch:
    for batch in read_batches(raw_dir):
        if batch.id == batch_id:
            return batch
    raise InputError(f"{record_path(raw_dir)}: no batch {batch_id} (`rakuten batches list` shows them)")


def set_status(raw_dir: Path, batch_id: int, status: str, screen: dict[str, Any] | None = None) -> Batch:
    """Approve, reject or quarantine a batch (with its new screen, if given): the record rewritten
    atomically; the caller then runs `dvc add`."""
    batches = read_batches(raw_dir)
    batch = find(raw_dir, batch_id)
    if batch.status == status:
        return batch
    if batch.status not in DECISIONS[status]:
        raise InputError(
            f"batch {batch_id} is {batch.status}: only a {' or '.join(DECISIONS[status])} batch can be {status}"
        )
    changed = replace(batch, status=status, screen=screen if screen is not None else batch.screen)
    with atomic_open(record_path(raw_dir)) as handle:
        handle.write(format_batches([changed if b.id == batch_id else b for b in batches]))
    return changed


def describe(batch: Batch) -> str:
    """One line for `rakuten batches list`."""
    screen = batch.screen or {}
    why = (
        f"; screen: {screen['reason']}"
        if screen.get("reason")
        else f"; screen skipped: {screen['skipped']}"
        if screen.get("skipped")
        else "; not screened"
    )
    return (
        f"{batch.id:>4}  {batch.status:<11}  {batch.time}  rows {batch.first_index}..{batch.last_index} "
        f"({batch.rows}, {batch.held_out} held out)  source {batch.source}{why}"
    )
