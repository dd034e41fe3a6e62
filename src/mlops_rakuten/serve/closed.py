"""Connections the server closed (serve/connections.py): counted, in a metric and one log line a minute at most."""

from __future__ import annotations

import logging
import time
from typing import Any

LOG_EVERY_SECONDS = 60.0

log = logging.getLogger("serve.connections")


class Dropped:
    """Connections closed for being slow or crowded out, logged as one line a minute at most.

    ``counter``: the app's rakuten_connections_closed_total (serve/metrics.py), labelled by reason.
    """

    def __init__(self) -> None:
        self.counts = {"slow": 0, "not reading": 0, "crowded out": 0, "refused": 0}
        self.logged_at = -LOG_EVERY_SECONDS
        self.counter: Any = None

    def add(self, reason: str, count: int = 1) -> None:
        self.counts[reason] += count
        if self.counter is not None and count:
            self.counter.labels(reason.replace(" ", "_")).inc(count)
        now = time.monotonic()
        if now - self.logged_at >= LOG_EVERY_SECONDS:
            self.logged_at = now
            log.warning(
                "connections closed, since the start: %d too slow sending their request, %d not reading "
                "their answers, %d crowded out by newer ones at the connection limit, %d not accepted for lack "
                "of file descriptors (totals; this line repeats at most once a minute)",
                self.counts["slow"],
                self.counts["not reading"],
                self.counts["crowded out"],
                self.counts["refused"],
            )


dropped = Dropped()
