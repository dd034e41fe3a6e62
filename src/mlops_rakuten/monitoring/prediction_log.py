"""The prediction log: every product /predict answered, one JSON line each, written off the request path.

Requests only put a record on a bounded in-memory queue; one thread per worker process cleans the
text and appends it to that process's own file (no interleaving between workers). Files are rotated
by size and age, and old ones deleted by age and total size; they are private (0600, in a 0700
folder) and a writer never deletes another one's open file (monitoring/log_folder.py). A write that
fails (a full disk) is logged once a minute, counted in ``rakuten_prediction_log_errors_total`` and
dropped: serving goes on. Each user (token subject) may fill a budget of bytes a minute; beyond, its
products are counted in ``rakuten_prediction_log_dropped_total`` and not logged
(monitoring/log_budget.py). Texts longer than TEXT_MAX_CHARS are cut in the log (``"truncated": true``).

Settings (environment, read by the server):

RAKUTEN_PREDICTION_LOG                 text (default): cleaned title and description, so rows can be
                                       labelled and sent to /ingest; features: only derived numbers
                                       (length, tokens, tokens unknown to the model); off
RAKUTEN_PREDICTION_LOG_DIR             default STATE_DIR/predictions
RAKUTEN_PREDICTION_LOG_ROTATE_MB       a file is closed past this size (default 64)
RAKUTEN_PREDICTION_LOG_ROTATE_HOURS    ... or this age (default 24)
RAKUTEN_PREDICTION_LOG_RETENTION_DAYS  closed files older than this are deleted (default 30)
RAKUTEN_PREDICTION_LOG_MAX_MB          ... and the oldest beyond this total (default 1024)
RAKUTEN_PREDICTION_LOG_USER_MB_PER_MINUTE  what one user may log a minute, per worker (default 1)
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter

from mlops_rakuten.core.errors import InputError
from mlops_rakuten.monitoring.log_budget import TEXT_MAX_CHARS, UserBudget, record_bytes
from mlops_rakuten.monitoring.log_folder import FILE_GLOB, file_name, open_private, private_folder, prune, writer_id
from mlops_rakuten.monitoring.signals import token_counts
from mlops_rakuten.text import clean_text

log = logging.getLogger("serve.prediction_log")

MODES = ("text", "features", "off")
__all__ = ["FILE_GLOB", "LogSettings", "PredictionLog", "default_folder"]  # FILE_GLOB: for the log's readers
QUEUE_SIZE = 10_000  # records waiting for the writer; beyond, new ones are dropped and counted
GATHER_SECONDS = 0.05  # the writer, woken by a record, waits this long for more before writing them all
WRITE_BATCH = 512  # records formatted and written at a time
ERROR_LOG_SECONDS = 60  # a full disk is said once a minute, not once per prediction


@dataclass(frozen=True)
class LogSettings:
    mode: str = "text"
    folder: Path | None = None
    rotate_bytes: int = 64 * 2**20
    rotate_seconds: float = 24 * 3600
    retention_seconds: float = 30 * 86400
    max_total_bytes: int = 1024 * 2**20
    user_bytes_per_minute: float = 2**20

    @classmethod
    def from_env(cls, state_dir: Path, environ: dict[str, str] | None = None) -> LogSettings:
        env = os.environ if environ is None else environ
        mode = env.get("RAKUTEN_PREDICTION_LOG", "text")
        if mode not in MODES:
            raise InputError(f"RAKUTEN_PREDICTION_LOG = {mode!r}, expected one of {', '.join(MODES)}")
        return cls(
            mode=mode,
            folder=Path(env.get("RAKUTEN_PREDICTION_LOG_DIR") or state_dir / "predictions"),
            rotate_bytes=int(_number(env, "RAKUTEN_PREDICTION_LOG_ROTATE_MB", 64) * 2**20),
            rotate_seconds=_number(env, "RAKUTEN_PREDICTION_LOG_ROTATE_HOURS", 24) * 3600,
            retention_seconds=_number(env, "RAKUTEN_PREDICTION_LOG_RETENTION_DAYS", 30) * 86400,
            max_total_bytes=int(_number(env, "RAKUTEN_PREDICTION_LOG_MAX_MB", 1024) * 2**20),
            user_bytes_per_minute=_number(env, "RAKUTEN_PREDICTION_LOG_USER_MB_PER_MINUTE", 1) * 2**20,
        )


def default_folder(environ: dict[str, str] | None = None) -> Path:
    """Where the server writes the log, for the commands that read it (same defaults as the server)."""
    env = os.environ if environ is None else environ
    if env.get("RAKUTEN_PREDICTION_LOG_DIR"):
        return Path(env["RAKUTEN_PREDICTION_LOG_DIR"])
    state = env.get("RAKUTEN_STATE_DIR") or Path(env.get("RAKUTEN_PROJECT_DIR") or ".") / ".dvc" / "tmp" / "serve"
    return Path(state) / "predictions"


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name, str(default))
    try:
        number = float(value)
    except ValueError:
        number = -1
    if number <= 0:
        raise InputError(f"{name} = {value!r}, expected a positive number")
    return number


@dataclass(frozen=True)
class _Answered:
    when: float
    designation: str
    description: str
    codes: Any
    scores: Any
    model: Any  # the LoadedModel that answered: its md5, and its vocabulary in features mode


class PredictionLog:
    def __init__(self, settings: LogSettings, registry: CollectorRegistry):
        self.settings = settings
        self.rows = Counter(
            "rakuten_prediction_log_rows_total", "Predictions written to the prediction log", registry=registry
        )
        self.errors = Counter(
            "rakuten_prediction_log_errors_total",
            "Predictions the log lost (still answered)",
            ["reason"],
            registry=registry,
        )
        for reason in ("write_failed", "queue_full"):
            self.errors.labels(reason)
        self.dropped = Counter(
            "rakuten_prediction_log_dropped_total",
            "Predictions not logged on purpose (still answered): user_budget, the user's bytes a minute used up",
            ["reason"],
            registry=registry,
        )
        self.dropped.labels("user_budget")
        self.budget = UserBudget(settings.user_bytes_per_minute)
        self._over_budget: dict[str, int] = {}  # user: products not logged since the last warning
        self._last_budget_log = -float(ERROR_LOG_SECONDS)
        self._writer = writer_id()
        # Records waiting for the writer. A deque, not a queue.Queue: appending takes no lock and wakes
        # nobody; the writer is woken once per batch (``_wake``), not once per record as a Queue's
        # notify did, which cost the event loop and the writer's wake-ups ~5 % of a worker under load.
        self._pending: collections.deque[_Answered] = collections.deque()
        self._wake = threading.Event()  # set by append when it is not already: records are waiting
        self._hurry = threading.Event()  # set by flush and close: write now, without gathering more
        self._stopping = False
        self._queued = 0  # records appended (request side) ...
        self._settled = 0  # ... and written or lost (writer side); each counter has a single writer
        self._handle: BinaryIO | None = None
        self._opened_at = 0.0
        self._files_opened = 0
        self._last_error_log = 0.0
        self._thread: threading.Thread | None = None
        if settings.mode != "off":
            self._thread = threading.Thread(target=self._write_forever, name="prediction-log", daemon=True)
            self._thread.start()

    def append(
        self,
        designation: str,
        description: str,
        codes: npt.ArrayLike,
        scores: npt.ArrayLike,
        model: Any,
        user: str = "",
    ) -> None:
        """Queue one answered product, within ``user``'s budget; never blocks and never raises."""
        if self._thread is None:
            return
        if not self.budget.spend(user, record_bytes(designation, description)):
            self._drop_over_budget(user)
            return
        if len(self._pending) >= QUEUE_SIZE:
            self.errors.labels("queue_full").inc()
            return
        self._pending.append(_Answered(time.time(), designation, description, codes, scores, model))
        self._queued += 1
        if not self._wake.is_set():  # checked after appending: a writer that cleared it drains after clearing
            self._wake.set()

    def _drop_over_budget(self, user: str) -> None:
        self.dropped.labels("user_budget").inc()
        self._over_budget[user] = self._over_budget.get(user, 0) + 1
        now = time.monotonic()
        if now - self._last_budget_log >= ERROR_LOG_SECONDS:
            self._last_budget_log = now
            counts = ", ".join(f"{name or '(no user)'}: {count}" for name, count in sorted(self._over_budget.items()))
            self._over_budget.clear()
            log.warning(
                "prediction log: products not logged, their user over its budget of %.2f MiB a minute "
                "(RAKUTEN_PREDICTION_LOG_USER_MB_PER_MINUTE) since the last such line: %s; still answered, "
                "counted in rakuten_prediction_log_dropped_total",
                self.settings.user_bytes_per_minute / 2**20,
                counts,
            )

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the writer (at server shutdown)."""
        if self._thread is not None and self._thread.is_alive():
            self._stopping = True
            self._hurry.set()
            self._wake.set()
            self._thread.join(timeout)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every record queued so far is on disk (or dropped); for tests and benchmarks."""
        deadline, queued = time.monotonic() + timeout, self._queued
        self._hurry.set()
        while self._settled < queued and time.monotonic() < deadline and self._thread and self._thread.is_alive():
            time.sleep(0.01)
        self._hurry.clear()

    def record(self, item: _Answered) -> dict[str, Any]:
        row: dict[str, Any] = {
            "time": datetime.fromtimestamp(item.when, timezone.utc).isoformat(timespec="milliseconds"),
            "model_version": item.model.md5,
            "prdtypecode": int(item.codes[0]),
            "score": round(float(item.scores[0]), 6),
            "top_k": [[int(c), round(float(s), 6)] for c, s in zip(item.codes, item.scores, strict=True)],
        }
        designation, description = clean_text(item.designation), clean_text(item.description)
        text = f"{designation} {description}".strip()
        row["text_chars"] = len(text)  # of the whole text, as the model saw it
        if self.settings.mode == "text":
            row.update(designation=designation[:TEXT_MAX_CHARS], description=description[:TEXT_MAX_CHARS])
            if max(len(designation), len(description)) > TEXT_MAX_CHARS:
                row["truncated"] = True
        else:
            tokens, unknown = token_counts(item.model.pipeline, [text])
            row.update(tokens=int(tokens[0]), unknown_tokens=int(unknown[0]))
        return row

    def _write_forever(self) -> None:
        while True:
            self._wake.wait()
            # More records arrive while this one is written anyway: gather them for one write (and one
            # wake-up of this thread) rather than a write each. flush() and close() do not wait.
            self._hurry.wait(GATHER_SECONDS)
            self._wake.clear()  # before draining: what is appended from now on sets it again
            while self._pending:
                answered = [self._pending.popleft() for _ in range(min(len(self._pending), WRITE_BATCH))]
                try:
                    self._write([self.record(i) for i in answered])
                except Exception as exc:  # OSError (disk full, folder gone) or anything else: never the request's
                    self._failed(len(answered), exc)
                finally:
                    self._settled += len(answered)
            if self._stopping:
                self._close_file()
                return

    def _write(self, rows: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in rows)
        handle = self._file()
        handle.write(data.encode("utf-8"))
        handle.flush()
        self.rows.inc(len(rows))

    def _file(self) -> BinaryIO:
        now = time.time()
        folder = self.settings.folder
        assert folder is not None  # set by from_env
        if self._handle is not None and (
            self._handle.tell() >= self.settings.rotate_bytes or now - self._opened_at >= self.settings.rotate_seconds
        ):
            self._close_file()
            s = self.settings
            prune(folder, s.retention_seconds, s.max_total_bytes, s.rotate_seconds, self._writer, None, now)
        if self._handle is None:
            if not self._files_opened:
                private_folder(folder)  # created 0700, or narrowed if an older version left it open
            else:
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # deleted meanwhile
            self._files_opened += 1  # several files may open within one second
            self._handle = open_private(folder / file_name(now, self._writer, self._files_opened))
            if self._handle.tell():  # reopened after a failed write: never continue a cut line
                self._handle.write(b"\n")
            self._opened_at = now
        return self._handle

    def _close_file(self) -> None:
        if self._handle is not None:
            try:
                self._handle.close()
            except OSError:
                pass
            self._handle = None

    def _failed(self, count: int, exc: Exception) -> None:
        self.errors.labels("write_failed").inc(count)
        self._close_file()  # a half-written line stays at the end of that file; readers skip it
        now = time.monotonic()
        if now - self._last_error_log >= ERROR_LOG_SECONDS:
            self._last_error_log = now
            log.error(
                "prediction log: %d prediction(s) not written to %s (%s: %s); still serving",
                count,
                self.settings.folder,
                type(exc).__name__,
                exc,
            )
