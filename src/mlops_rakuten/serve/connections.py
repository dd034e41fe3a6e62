"""Connections a client cannot hold open by sending slowly: deadlines for each request's head and body.

uvicorn waits for a request as long as bytes keep trickling in: 300 connections to
/token sending one body byte every 10 s all stayed open for 70 s, and with the file
descriptors used up /health stopped answering. This HTTP/1.1 protocol (uvicorn's
h11 one, with deadlines) gives every request

- HEAD_SECONDS for its head (request line and headers), counted from the moment
  the connection opens or the previous answer was sent;
- BODY_GRACE_SECONDS plus one second per BODY_MIN_BYTES_PER_SECOND received for
  its body, so an upload keeps going as long as it arrives at that average rate.

A request that misses its deadline gets 408 and the connection is closed. And when
the open connections reach ``max_connections()`` (from the file-descriptor limit,
which `rakuten serve` raises to its hard maximum first), each new connection makes the one that
has been waiting longest for its request make room: a crowd of slow clients cannot
keep a quick one (or /health) out. A burst can still use up the descriptors before
any of its connections is seen (the event loop accepts up to the listen backlog in
one go); asyncio then reports "socket.accept() out of system resource", with a
traceback, for every connection it could not accept, thousands a second. The
handler ``on_loop_error`` instead closes the oldest waiting connections, so accepting
resumes. Closed connections are counted and logged at most once a minute, never
with a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import resource
import time

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_SECONDS = 10.0
BODY_GRACE_SECONDS = 10.0
BODY_MIN_BYTES_PER_SECOND = 32 * 2**10
# File descriptors kept for everything but client connections: the listening socket, the model and
# users files, logs, `dvc` subprocesses' pipes during /ingest and /train.
RESERVED_DESCRIPTORS = 48
LOG_EVERY_SECONDS = 60.0

log = logging.getLogger("serve.connections")
_WAITING = (h11.IDLE, h11.SEND_BODY)  # the client's side of the request is not complete yet


def raise_descriptor_limit() -> None:
    """Raise this process's open-file limit to its hard maximum (`rakuten serve` does, before its workers start)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass  # a container may forbid it: the soft limit it left then decides


@functools.cache  # read at the first connection: after `rakuten serve` has raised the limit
def max_connections() -> int:
    """The connections this process has descriptors for, beyond those it keeps for itself."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = 1 << 16 if soft == resource.RLIM_INFINITY else min(soft, 1 << 16)
    return max(8, soft - RESERVED_DESCRIPTORS)


class _Dropped:
    """Connections closed for being slow or crowded out, logged as one line a minute at most."""

    def __init__(self) -> None:
        self.counts = {"slow": 0, "crowded out": 0, "refused": 0}
        self.logged_at = -LOG_EVERY_SECONDS

    def add(self, reason: str, count: int = 1) -> None:
        self.counts[reason] += count
        now = time.monotonic()
        if now - self.logged_at >= LOG_EVERY_SECONDS:
            self.logged_at = now
            log.warning(
                "connections closed before their request was in, since the start: %d too slow, %d crowded "
                "out by newer ones at the connection limit, %d not accepted for lack of file descriptors "
                "(totals; this line repeats at most once a minute)",
                self.counts["slow"],
                self.counts["crowded out"],
                self.counts["refused"],
            )


dropped = _Dropped()
_open: set[DeadlineProtocol] = set()
_room_made_at = 0.0


def _make_room(count: int) -> int:
    """Close the ``count`` connections that have waited longest for their requests; how many were closed."""
    waiting = [
        c
        for c in _open
        if c.conn.their_state in _WAITING
        and not c.transport.is_closing()
        and not (c.cycle is not None and c.cycle.response_started and not c.cycle.response_complete)
    ]
    waiting.sort(key=lambda c: c._since)
    for connection in waiting[:count]:
        connection._disarm()
        connection._close(
            503, "Service Unavailable", "too many connections waiting for their requests; this one waited longest\n"
        )
    return len(waiting[:count])


def on_loop_error(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """The event loop's exception handler: out of descriptors on accept, make room (and no traceback)."""
    global _room_made_at
    if context.get("message") != "socket.accept() out of system resource":
        loop.default_exception_handler(context)
        return
    dropped.add("refused")
    now = time.monotonic()
    if now - _room_made_at >= 0.1:  # asyncio reports each connection of the burst: make room once for all
        _room_made_at = now
        dropped.add("crowded out", _make_room(max(16, len(_open) // 4)))


def _plain_response(status: int, reason: str, message: str) -> bytes:
    body = message.encode("ascii")
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode("ascii") + body


class DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, with a deadline on receiving each request (see the module's docstring)."""

    # A stream transport, as uvicorn's own override narrows it.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._since = self.loop.time()  # when the current wait for the client began
        self._body_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._arm()
        _open.add(self)
        if len(_open) > max_connections():
            dropped.add("crowded out", _make_room(1))

    def connection_lost(self, exc: Exception | None) -> None:
        _open.discard(self)
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        before = self.conn.their_state
        super().data_received(data)
        state = self.conn.their_state
        if state is not before:  # a body begins, or the next request's head is due
            self._since, self._body_bytes = self.loop.time(), 0
        if state is h11.SEND_BODY:
            self._body_bytes += len(data)  # with the head's bytes in the first chunk: a few hundred at most
        if self._timer is None:
            self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE:  # the next request's head is due from now
            self._since = self.loop.time()
        self._arm()

    def _deadline(self) -> float | None:
        state = self.conn.their_state
        if state is h11.IDLE:
            return self._since + HEAD_SECONDS
        if state is h11.SEND_BODY:
            return self._since + BODY_GRACE_SECONDS + self._body_bytes / BODY_MIN_BYTES_PER_SECOND
        return None  # the request is in: the app's turn, not the client's

    def _arm(self) -> None:
        self._disarm()
        deadline = self._deadline()
        if deadline is not None and not self.transport.is_closing():
            self._timer = self.loop.call_at(deadline, self._check)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        deadline = self._deadline()
        if deadline is None or self.transport.is_closing():
            return
        if self.flow.read_paused:  # the app is not reading the body yet: not the client's delay
            self._since += 1.0
            self._timer = self.loop.call_later(1.0, self._check)
        elif self.loop.time() >= deadline:
            dropped.add("slow")
            self._close(
                408,
                "Request Timeout",
                f"request not received in time: its head must arrive within "
                f"{HEAD_SECONDS:.0f} s and its body at {BODY_MIN_BYTES_PER_SECOND // 1024} KiB/s at least "
                f"after {BODY_GRACE_SECONDS:.0f} s\n",
            )
        else:
            self._timer = self.loop.call_at(deadline, self._check)

    def _close(self, status: int, reason: str, message: str) -> None:
        """Answer ``status`` unless an answer has begun, and close; the app, if running, sees a disconnect."""
        if self.conn.their_state is h11.IDLE:  # silent on an idle keep-alive connection: no request to answer
            answer = bool(self.conn.trailing_data[0])
        else:
            answer = self.cycle is not None and not self.cycle.response_started
        if answer:
            self.transport.write(_plain_response(status, reason, message))
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()
