"""The one ingest sequence, for `POST /ingest` and `rakuten ingest` alike: check the upload, screen its
labels, append the rows with their batch's record line, `dvc add` the raw data, keep the answer.

A start-up (and every ingest, first) finishes an append that a crash cut off after its commit
point; both go through ``finish_pending``. The caller holds nothing: ``ingest`` takes the project
lock itself.

Idempotency keys: a client that sends ``Idempotency-Key`` with an upload can retry
it safely when it got no answer (a dropped connection, a server killed after the
commit point). The key, the upload's SHA-256 and the answer are committed with the
rows (``raw_append``'s note) and kept once the rows are recorded; the same key with
the same file then gets the first answer again, marked ``"replayed": true``, and
nothing is added twice. The same key with another file is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_rakuten.core.atomic import atomic_open
from mlops_rakuten.core.batches import ACCEPTED, QUARANTINED, Batch
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.paths import RAW_DIR, RAW_POINTER
from mlops_rakuten.ops.batches import Arrival, default_source, now, set_status
from mlops_rakuten.ops.commands import run
from mlops_rakuten.ops.dvcfiles import pointer_out, read_yaml
from mlops_rakuten.ops.project_lock import Busy, project_lock
from mlops_rakuten.ops.raw_append import append_products, recorded, recover, staged_note
from mlops_rakuten.ops.upload import BatchRefused, Upload, check_new_ids, check_upload

log = logging.getLogger("ingest")
KEY_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"  # a UUID, a ULID, a client's own counter...
SOURCE_PATTERN = r"^[^\x00-\x1f\x7f]{1,128}$"  # a batch's source name: one printable line
# A label screen (monitoring's): the accepted rows and the project in; a JSON-able result out, with
# "passed" (False: the batch is quarantined) and "reason" (one line).
Screen = Callable[[pd.DataFrame, Path], dict[str, Any]]


class Refused(InputError):
    """Nothing was added: the file, a row check or the batch as a whole said no (``report`` says what)."""

    def __init__(self, message: str, report: dict | None = None) -> None:
        super().__init__(message)
        self.report = report or {"received": 0, "accepted": 0, "rejected": 0, "rejects": []}


class NotRecorded(Exception):
    """The rows were appended to data/raw but `dvc add` failed (the next start or ingest runs it again)."""


@dataclass(frozen=True)
class Keyed:
    key: str
    digest: str  # SHA-256 of the uploaded bytes


def raw_staging(project: Path) -> Path:
    # In the project, whatever RAKUTEN_STATE_DIR says: the final renames into data/raw must not
    # cross filesystems, or they would stop being atomic.
    return project / ".dvc" / "tmp" / "raw-staging"


def ingest_keys(project: Path) -> Path:
    # Beside the staging folder: a key's record is renamed out of it, on the same filesystem.
    return project / ".dvc" / "tmp" / "ingest-keys"


def data_version(root: Path) -> dict[str, Any] | None:
    """md5, size and file count of the raw data as ``data/raw.dvc`` records them."""
    out = pointer_out(read_yaml(root / RAW_POINTER))
    if not out.get("md5"):
        return None
    return {"path": RAW_POINTER, **{key: out.get(key) for key in ("md5", "size", "nfiles")}}


def upload_key(key: str | None, data: bytes) -> Keyed | None:
    return Keyed(key, hashlib.sha256(data).hexdigest()) if key else None


def _key_file(project: Path, key: str) -> Path:
    return ingest_keys(project) / f"{hashlib.sha256(key.encode()).hexdigest()}.json"


def _record(project: Path) -> None:
    """`dvc add` the appended raw data; then keep the append's key and answer, and the append is complete."""
    added = run(["dvc", "add", "-q", RAW_DIR], project, check=False)
    if added.returncode != 0:
        raise NotRecorded((added.stderr.strip().splitlines() or ["?"])[-1])
    note = staged_note(raw_staging(project))
    if note and note.get("key"):
        current = data_version(project)
        answer = {
            **note["answer"],
            "first_index": note["first_index"],
            "last_index": note["last_index"],
            "data_md5": current and current["md5"],
            "batch": note.get("batch"),
        }
        with atomic_open(_key_file(project, note["key"])) as handle:
            json.dump({"key": note["key"], "digest": note["digest"], "answer": answer}, handle)
    recorded(raw_staging(project))


def finish_pending(project: Path) -> bool:
    """Complete an append committed but not recorded (the caller holds the project); True if there was one."""
    if not recover(project / RAW_DIR, raw_staging(project)):
        return False
    _record(project)
    return True


def earlier_answer(project: Path, keyed: Keyed) -> dict | None:
    """The answer already given for this key and upload, or None; Refused if the key came with another file."""
    path = _key_file(project, keyed.key)
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    if record["digest"] != keyed.digest:
        raise Refused(
            f"Idempotency-Key {keyed.key!r} was already used for another upload (rows "
            f"{record['answer']['first_index']}..{record['answer']['last_index']}); "
            "send new rows with a new key"
        )
    return {**record["answer"], "replayed": True}


def _arrival(
    products: pd.DataFrame, project: Path, source: str | None, key: str | None, screen: Screen | None
) -> Arrival:
    time = now()
    result = screen(products, project) if screen is not None else None
    status = QUARANTINED if result is not None and not result.get("passed", True) else ACCEPTED
    return Arrival(source or default_source(key, time), time, status, result)


def commit(
    project: Path,
    upload: Upload,
    report: dict,
    keyed: Keyed | None,
    source: str | None = None,
    screen: Screen | None = None,
) -> dict:
    """Append the upload's accepted rows as one batch and record them (the caller holds the project).

    ``report`` is what the client is told besides the indices, the batch and the data versions.
    NotRecorded when `dvc add` fails after the append.
    """
    finish_pending(project)  # an earlier append cut off after its commit point, with its key
    try:
        earlier = earlier_answer(project, keyed) if keyed is not None else None
        if earlier is not None:
            return earlier
        check_new_ids(upload, project / RAW_DIR)
    except (Refused, BatchRefused) as exc:
        raise Refused(str(exc), report) from None
    arrival = _arrival(upload.accepted, project, source, keyed.key if keyed else None, screen)
    previous = data_version(project)
    answer = {**report, "previous_data_md5": previous and previous["md5"]}
    note = {"key": keyed.key, "digest": keyed.digest, "answer": answer} if keyed else None
    first, last, batch = append_products(project / RAW_DIR, raw_staging(project), upload.accepted, note, arrival)
    try:
        _record(project)
    except NotRecorded as exc:
        raise NotRecorded(
            f"rows {first}..{last} were appended to {RAW_DIR} but `dvc add {RAW_DIR}` failed: {exc}"
        ) from None
    current = data_version(project)
    return {
        **answer,
        "first_index": first,
        "last_index": last,
        "data_md5": current and current["md5"],
        "batch": batch and batch.as_dict(),
        "replayed": False,
    }


def ingest(
    project: Path,
    state_dir: Path,
    data: bytes,
    name: str,
    key: str | None = None,
    source: str | None = None,
    screen: Screen | None = None,
) -> dict:
    """Check an uploaded CSV and add its good rows as one batch; the answer.

    Refused (nothing added) for a bad file or batch; Busy while the project is held; InputError
    when data/raw is missing or inconsistent; StagingCheckFailed or NotRecorded if the append fails.
    """
    if source is not None and not re.fullmatch(SOURCE_PATTERN, source):
        raise Refused(f"source {source!r}: expected 1 to 128 printable characters")
    try:
        upload = check_upload(data, name)
    except InputError as exc:
        raise Refused(str(exc)) from None
    report = {
        "received": upload.received,
        "accepted": len(upload.accepted),
        "rejected": len(upload.rejects),
        "rejects": upload.rejects,
    }
    if upload.accepted.empty:
        raise Refused("no row passed the checks; nothing was added", report)
    with project_lock(state_dir):
        return commit(project, upload, report, upload_key(key, data), source, screen)


def finish_interrupted_ingest(project: Path, state_dir: Path) -> None:
    """At start-up: an ingest cut off after its commit point (renames or `dvc add` unfinished) is completed."""
    try:
        with project_lock(state_dir):
            if finish_pending(project):
                log.warning("finished an interrupted ingest: %s appended and recorded in %s.dvc", RAW_DIR, RAW_DIR)
    except NotRecorded as exc:
        log.error("an interrupted ingest into %s is still not recorded: `dvc add` failed: %s", RAW_DIR, exc)
    except Busy:
        pass  # whoever holds the project (another worker starting, or a run) recovers it first


def decide(project: Path, state_dir: Path, batch_id: int, status: str, screen: dict[str, Any] | None = None) -> Batch:
    """Approve, reject or quarantine a batch: its status (and screen, if given) changed in the record and
    data/raw recorded with `dvc add`."""
    with project_lock(state_dir):
        return record_decision(project, batch_id, status, screen)


def record_decision(project: Path, batch_id: int, status: str, screen: dict[str, Any] | None = None) -> Batch:
    """``decide`` for a caller that already holds the project (`rakuten retrain`, which the server runs
    under its lock, passed down: taking it again would find it busy)."""
    finish_pending(project)
    batch = set_status(project / RAW_DIR, batch_id, status, screen)
    added = run(["dvc", "add", "-q", RAW_DIR], project, check=False)
    if added.returncode != 0:
        raise NotRecorded(f"batch {batch_id} is {status} in the record but `dvc add {RAW_DIR}` failed")
    return batch
