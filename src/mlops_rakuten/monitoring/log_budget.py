"""How much of the prediction log one user may fill: a budget of bytes a minute per token subject.

Without it, 4 connections of one `user` token sending batches of 64 products of 20,000 characters
grew the log 131.7 MiB in 33 s: the size cap would be reached in minutes, and retention would then
delete the oldest files, the history drift is measured against. Each user has a bucket holding one
minute's budget, refilled continuously; a record is logged only if its size fits in what is left,
and what does not fit is counted (``rakuten_prediction_log_dropped_total{reason="user_budget"}``),
not written. The prediction is answered either way. Each worker process keeps its own buckets.

A record's size is counted before cleaning, as the UTF-8 bytes of its title and description cut
to the log's cap (TEXT_MAX_CHARS each) plus RECORD_OVERHEAD for the other fields: at least what
the line takes once cleaned, in practice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

TEXT_MAX_CHARS = 5_000  # per field, in the log; longer texts are cut there (the answer used all of it)
RECORD_OVERHEAD = 256  # the time, model version, classes and scores of a record, as JSON
_MAX_USERS = 10_000  # buckets kept; beyond, the full ones (idle users) are forgotten


def record_bytes(designation: str, description: str) -> int:
    """What logging one product counts against its user's budget."""
    return (
        len(designation[:TEXT_MAX_CHARS].encode("utf-8", "replace"))
        + len(description[:TEXT_MAX_CHARS].encode("utf-8", "replace"))
        + RECORD_OVERHEAD
    )


class UserBudget:
    """Token buckets of ``bytes_per_minute`` per user, full at first."""

    def __init__(self, bytes_per_minute: float, clock: Callable[[], float] = time.monotonic):
        self.bytes_per_minute = bytes_per_minute
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # user: (bytes left, when counted)
        self._lock = threading.Lock()

    def spend(self, user: str, size: int) -> bool:
        """Take ``size`` bytes from ``user``'s budget if they are left; False (and nothing taken) otherwise."""
        with self._lock:
            now = self._clock()
            left, then = self._buckets.get(user, (self.bytes_per_minute, now))
            left = min(self.bytes_per_minute, left + (now - then) * self.bytes_per_minute / 60)
            allowed = size <= left
            self._buckets[user] = (left - size if allowed else left, now)
            if len(self._buckets) > _MAX_USERS:
                self._forget_idle(now)
            return allowed

    def _forget_idle(self, now: float) -> None:
        rate = self.bytes_per_minute / 60
        for user, (left, then) in list(self._buckets.items()):
            if left + (now - then) * rate >= self.bytes_per_minute:
                del self._buckets[user]
