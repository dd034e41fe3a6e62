"""The login limits (serve/login_limits.py) on a clock the test sets: no server, no waiting.

Rates are chosen so every level and wait is exact in binary (120 a minute is 2 tokens a second).
"""

from __future__ import annotations

import pytest

import mlops_rakuten.serve.login_limits as login_limits
from mlops_rakuten.serve.login_limits import HASHING_SLOTS, MAX_TRACKED, WAITING_SLOTS, Buckets, LoginLimits


def drained(per_minute: int, key: str = "k", at: float = 0.0, **kwargs) -> Buckets:
    """Buckets whose ``key`` spent all ``per_minute`` tokens at time ``at``."""
    buckets = Buckets(per_minute, **kwargs)
    for _ in range(per_minute):
        assert buckets.wait_seconds(key, at) == 0.0
        buckets.spend(key, at)
    return buckets


def test_a_full_bucket_allows_per_minute_tries_then_refills_at_that_rate():
    buckets = drained(120)
    assert buckets.wait_seconds("k", 0.0) == 0.5  # empty: one token takes 1 / (2 a second)
    assert buckets.wait_seconds("k", 0.25) == 0.25  # half a token back
    assert buckets.wait_seconds("k", 0.5) == 0.0  # exactly one token: may try
    assert buckets.wait_seconds("k", 0.75) == 0.0  # one and a half: 0, not a negative wait
    assert buckets.wait_seconds("other", 0.0) == 0.0  # keys are independent
    buckets.spend("k", 0.5)
    assert buckets.wait_seconds("k", 0.5) == 0.5


def test_refilling_stops_at_the_capacity():
    buckets = Buckets(120)
    buckets.spend("k", 0.0)
    # Idle for an hour: back to 120 tokens, not 7,000; the 121st try at once waits.
    for _ in range(120):
        assert buckets.wait_seconds("k", 3600.0) == 0.0
        buckets.spend("k", 3600.0)
    assert buckets.wait_seconds("k", 3600.0) == 0.5


def test_spending_goes_below_zero_and_the_wait_grows():
    buckets = drained(120)
    buckets.spend("k", 0.0)  # an attempt counted anyway (a failed login after a pass)
    assert buckets.wait_seconds("k", 0.0) == 1.0


def test_without_a_time_the_clock_is_monotonic(monkeypatch):
    buckets = Buckets(120)
    monkeypatch.setattr(login_limits.time, "monotonic", lambda: 100.0)
    for _ in range(120):
        buckets.spend("k")
    assert buckets.wait_seconds("k") == 0.5
    monkeypatch.setattr(login_limits.time, "monotonic", lambda: 100.25)
    assert buckets.wait_seconds("k") == 0.25


def test_the_least_recently_spent_keys_are_forgotten_first():
    buckets = Buckets(1, max_keys=2)
    buckets.spend("a", 0.0)
    buckets.spend("b", 0.0)
    assert buckets.wait_seconds("a", 0.0) > 0 and buckets.wait_seconds("b", 0.0) > 0  # both remembered
    buckets.spend("a", 0.0)  # a is now the most recent
    buckets.spend("c", 0.0)  # over max_keys: b, the oldest, goes
    assert buckets.wait_seconds("b", 0.0) == 0.0
    assert buckets.wait_seconds("a", 0.0) > 0 and buckets.wait_seconds("c", 0.0) > 0
    assert Buckets(1).max_keys == MAX_TRACKED


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """The time LoginLimits sees: set ``clock[0]``."""
    now = [0.0]
    monkeypatch.setattr(login_limits.time, "monotonic", lambda: now[0])
    return now


def test_each_attempt_spends_its_address_then_it_waits_whole_seconds(clock):
    limits = LoginLimits(per_address_per_minute=2, failures_per_name_per_minute=100)
    assert limits.retry_after("1.2.3.4", "bob") is None
    assert limits.retry_after("1.2.3.4", "eve") is None
    assert limits.retry_after("1.2.3.4", "bob") == 30  # 2 a minute: one every 30 s
    assert limits.retry_after("5.6.7.8", "bob") is None  # another address
    clock[0] = 29.5
    assert limits.retry_after("1.2.3.4", "bob") == 1  # half a second rounds up to one
    clock[0] = 27.5
    assert limits.retry_after("1.2.3.4", "bob") == 3  # 2.5 s rounds up
    clock[0] = 30.0
    assert limits.retry_after("1.2.3.4", "bob") is None


def test_failures_per_name_block_every_address(clock):
    limits = LoginLimits(per_address_per_minute=100, failures_per_name_per_minute=1)
    assert limits.retry_after("1.2.3.4", "bob") is None
    assert limits.retry_after("1.2.3.4", "bob") is None  # a pass spends no name token
    limits.failed("bob")
    assert limits.retry_after("9.9.9.9", "bob") == 60  # the name's wait, the longer one
    assert limits.retry_after("9.9.9.9", "alice") is None


def test_the_longer_of_the_two_waits_is_given(clock):
    limits = LoginLimits(per_address_per_minute=1, failures_per_name_per_minute=2)
    assert limits.retry_after("1.2.3.4", "bob") is None
    limits.failed("bob")
    limits.failed("bob")
    assert limits.retry_after("1.2.3.4", "bob") == 60  # address: 60 s; name: 30 s
    assert limits.retry_after("5.6.7.8", "bob") == 30


def test_a_full_waiting_room_refuses_for_a_second_without_counting(clock):
    limits = LoginLimits(per_address_per_minute=1, failures_per_name_per_minute=1)
    assert limits.waiting == 0 and limits.hashing._value == HASHING_SLOTS
    limits.waiting = HASHING_SLOTS + WAITING_SLOTS
    assert limits.retry_after("1.2.3.4", "bob") == 1
    limits.waiting -= 1
    assert limits.retry_after("1.2.3.4", "bob") is None  # the refused attempt spent nothing
    assert limits.retry_after("1.2.3.4", "bob") == 60
