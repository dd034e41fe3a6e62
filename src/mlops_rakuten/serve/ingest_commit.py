"""An ingest's commit sequence, in one place: append the rows, `dvc add` the raw data, record it done.

POST /ingest runs all of it; a start-up (and every ingest, first) finishes an append
that a crash cut off after its commit point. Both go through ``finish_pending``.

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
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlops_rakuten.core.atomic import atomic_open
from mlops_rakuten.ops.commands import run
from mlops_rakuten.serve.project import Busy, data_version, project_lock
from mlops_rakuten.serve.raw_append import append_products, recorded, recover, staged_note
from mlops_rakuten.serve.settings import RAW_DIR, Settings

log = logging.getLogger("serve.ingest")
KEY_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"  # a UUID, a ULID, a client's own counter...


class KeyReused(Exception):
    """An idempotency key already used for another upload."""


class NotRecorded(Exception):
    """The rows were appended to data/raw but `dvc add` failed (the next start or ingest runs it again)."""


@dataclass(frozen=True)
class Keyed:
    key: str
    digest: str  # SHA-256 of the uploaded bytes


def upload_key(key: str | None, data: bytes) -> Keyed | None:
    return Keyed(key, hashlib.sha256(data).hexdigest()) if key else None


def _key_file(settings: Settings, key: str) -> Path:
    return settings.ingest_keys / f"{hashlib.sha256(key.encode()).hexdigest()}.json"


def _record(settings: Settings) -> None:
    """`dvc add` the appended raw data; then keep the append's key and answer, and the append is complete."""
    added = run(["dvc", "add", "-q", RAW_DIR], settings.project_dir, check=False)
    if added.returncode != 0:
        raise NotRecorded((added.stderr.strip().splitlines() or ["?"])[-1])
    note = staged_note(settings.raw_staging)
    if note and note.get("key"):
        current = data_version(settings.project_dir)
        answer = {
            **note["answer"],
            "first_index": note["first_index"],
            "last_index": note["last_index"],
            "data_md5": current and current["md5"],
        }
        with atomic_open(_key_file(settings, note["key"])) as handle:
            json.dump({"key": note["key"], "digest": note["digest"], "answer": answer}, handle)
    recorded(settings.raw_staging)


def finish_pending(settings: Settings) -> bool:
    """Complete an append committed but not recorded (the caller holds the project); True if there was one."""
    if not recover(settings.raw_dir, settings.raw_staging):
        return False
    _record(settings)
    return True


def earlier_answer(settings: Settings, keyed: Keyed) -> dict | None:
    """The answer already given for this key and upload, or None; KeyReused if the key came with another file."""
    path = _key_file(settings, keyed.key)
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    if record["digest"] != keyed.digest:
        raise KeyReused(
            f"Idempotency-Key {keyed.key!r} was already used for another upload (rows "
            f"{record['answer']['first_index']}..{record['answer']['last_index']}); "
            "send new rows with a new key"
        )
    return {**record["answer"], "replayed": True}


def commit(settings: Settings, products: pd.DataFrame, answer: dict, keyed: Keyed | None) -> dict:
    """Append ``products`` and record them (the caller holds the project); the full answer.

    ``answer`` is what the client is told besides the indices and data versions. NotRecorded
    when `dvc add` fails after the append.
    """
    finish_pending(settings)  # an earlier append cut off after its commit point, with its key
    if keyed is not None:
        earlier = earlier_answer(settings, keyed)
        if earlier is not None:
            return earlier
    previous = data_version(settings.project_dir)
    answer = {**answer, "previous_data_md5": previous and previous["md5"]}
    note = {"key": keyed.key, "digest": keyed.digest, "answer": answer} if keyed else None
    first, last = append_products(settings.raw_dir, settings.raw_staging, products, note)
    try:
        _record(settings)
    except NotRecorded as exc:
        raise NotRecorded(
            f"rows {first}..{last} were appended to {RAW_DIR} but `dvc add {RAW_DIR}` failed: {exc}"
        ) from None
    current = data_version(settings.project_dir)
    return {
        **answer,
        "first_index": first,
        "last_index": last,
        "data_md5": current and current["md5"],
        "replayed": False,
    }


def finish_interrupted_ingest(settings: Settings) -> None:
    """At start-up: an ingest cut off after its commit point (renames or `dvc add` unfinished) is completed."""
    try:
        with project_lock(settings.state_dir):
            if finish_pending(settings):
                log.warning("finished an interrupted ingest: %s appended and recorded in %s.dvc", RAW_DIR, RAW_DIR)
    except NotRecorded as exc:
        log.error("an interrupted ingest into %s is still not recorded: `dvc add` failed: %s", RAW_DIR, exc)
    except Busy:
        pass  # whoever holds the project (another worker starting, or a run) recovers it first
