"""POST /token under attack: attempts rate-limited per client address and per user name, hashing bounded.

Each password check is an argon2 verification costing ~64 MiB and tens of
milliseconds of CPU, so 64 concurrent wrong logins once took 2.8 GB and made
/health wait 11 s. Here:

- at most HASHING_SLOTS verifications run at once, at most WAITING_SLOTS more
  wait for a slot; beyond that a login is refused at once with 429;
- every attempt spends one token of its client address's bucket, every failed
  attempt one of its user name's bucket (known or not: the answer must not
  tell which names exist); an empty bucket is a 429 with Retry-After, before
  any hashing.

The state lives in this process: with N uvicorn workers a client gets up to N
times the budget. Several workers or hosts need a shared limiter instead
(nginx's ``limit_req`` on /token in front, see docs/serving-limits.md).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import OrderedDict

# All cores but one: the event loop (/health, /predict) keeps a core while logins queue.
HASHING_SLOTS = max(1, (os.cpu_count() or 2) - 1)
WAITING_SLOTS = 8
MAX_TRACKED = 10_000  # addresses and names remembered; the oldest are forgotten first


class Buckets:
    """Token buckets by key: ``per_minute`` tokens, refilled continuously."""

    def __init__(self, per_minute: int, max_keys: int = MAX_TRACKED):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _level(self, key: str, now: float) -> float:
        tokens, then = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - then) * self.rate)

    def wait_seconds(self, key: str, now: float | None = None) -> float:
        """0 if ``key`` may try now, else how long until it may."""
        now = time.monotonic() if now is None else now
        level = self._level(key, now)
        return 0.0 if level >= 1 else (1 - level) / self.rate

    def spend(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._buckets[key] = (self._level(key, now) - 1, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)


class LoginLimits:
    def __init__(self, per_address_per_minute: int, failures_per_name_per_minute: int):
        self.addresses = Buckets(per_address_per_minute)
        self.names = Buckets(failures_per_name_per_minute)
        self.hashing = asyncio.Semaphore(HASHING_SLOTS)
        self.waiting = 0  # logins waiting for or holding a hashing slot

    def retry_after(self, address: str, name: str) -> int | None:
        """Seconds to wait before this attempt is allowed, or None if it may go on (and is counted)."""
        wait = max(self.addresses.wait_seconds(address), self.names.wait_seconds(name))
        if wait > 0:
            return max(1, math.ceil(wait))
        if self.waiting >= HASHING_SLOTS + WAITING_SLOTS:
            return 1
        self.addresses.spend(address)
        return None

    def failed(self, name: str) -> None:
        self.names.spend(name)
