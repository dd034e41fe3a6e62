"""Connections a client cannot hold open by sending slowly: deadlines for each request's head and body.

uvicorn waits for a request as long as bytes keep trickling in: 300 connections to
/token sending one body byte every 10 s all stayed open for 70 s, and with the file
descriptors used up /health stopped answering. This HTTP/1.1 protocol (uvicorn's
httptools one, whose C parser costs a fraction of h11's pure Python, with deadlines)
gives every request

- HEAD_SECONDS for its head (request line and headers), counted from the moment
  the connection opens or the previous answer was sent;
- BODY_GRACE_SECONDS plus one second per BODY_MIN_BYTES_PER_SECOND received for
  its body, so an upload keeps going as long as it arrives at that average rate.

A request that misses its deadline gets 408 and the connection is closed. And when
the open connections reach ``max_connections()`` (from the file-descriptor limit,
which `rakuten serve` raises to its hard maximum first), each new connection makes the one that
has been waiting longest for its request make room: a crowd of slow clients cannot
keep a quick one (or /health) out. A request head is refused (400) once more than
HEAD_MAX_BYTES of it have arrived after the read it began in, as h11 refused heads over
16 KiB. A burst can still use up the descriptors before any of its connections is seen
(the event loop accepts up to the listen backlog in one go); asyncio then reports
"socket.accept() out of system resource", with a traceback, for every connection it
could not accept, thousands a second. The handler ``on_loop_error`` instead closes the
oldest waiting connections, so accepting resumes. Closed connections are counted and logged at most once a minute, never
with a traceback.

Sending has a deadline too, in serve/sending.py: a client that does not take its answers is
reset, and such connections are the first to make room at the limit.
"""

from __future__ import annotations

import asyncio
import asyncio.constants
import time

from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from mlops_rakuten.serve.closed import dropped
from mlops_rakuten.serve.descriptors import max_connections
from mlops_rakuten.serve.sending import SEND_SECONDS, SendDeadline
from mlops_rakuten.serve.writes import CoalescingTransport

HEAD_SECONDS = 10.0
BODY_GRACE_SECONDS = 10.0
BODY_MIN_BYTES_PER_SECOND = 32 * 2**10
# A connection just accepted (a /health probe among a burst, say) has had no time to send its request:
# another new connection does not crowd it out before this. (Out of descriptors, the oldest go at once.)
SPARED_SECONDS = 0.5
ACCEPT_RETRY_SECONDS = 0.1  # out of descriptors, accept again this soon (asyncio's default: 1 s)
# httptools has no limit of its own on a request head: h11's, which uvicorn used before.
HEAD_MAX_BYTES = 16 * 2**10


_open: set[DeadlineProtocol] = set()
_room_made_at = 0.0


def _make_room(count: int, spare_new: bool = False) -> int:
    """Close ``count`` connections, those not reading their answers first, then those that have waited
    longest for their requests (SPARED_SECONDS at least if ``spare_new``); how many were closed."""
    now = next(iter(_open)).loop.time() if _open else 0.0
    # Behind: answers wait in the transport, the kernel holding UNSENT_BYTES already (not yet paused, perhaps).
    behind = [c for c in _open if c._stuck_since is not None or c.transport.get_write_buffer_size()]
    behind.sort(key=lambda c: now if c._stuck_since is None else c._stuck_since)
    late = set(behind)
    waiting = [
        c
        for c in _open
        if c not in late
        and c._deadline() is not None
        and not (spare_new and now - c._since < SPARED_SECONDS)
        and not c.transport.is_closing()
        and not (c._running is not None and c._running.response_started and not c._running.response_complete)
    ]
    waiting.sort(key=lambda c: c._since)
    chosen = (behind + waiting)[:count]
    for connection in chosen:
        connection._disarm()
        if connection in late:
            connection._reset()
        else:
            connection._close(
                503, "Service Unavailable", "too many connections waiting for their requests; this one waited longest\n"
            )
    return len(chosen)


def on_loop_error(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """The event loop's exception handler: out of descriptors on accept, make room (and no traceback)."""
    global _room_made_at
    if context.get("message") != "socket.accept() out of system resource":
        loop.default_exception_handler(context)
        return
    dropped.add("refused")
    # asyncio stops accepting for ACCEPT_RETRY_DELAY (1 s) after this, read once the handler returns; room is
    # made below, so accepting again sooner lets a /health probe queued meanwhile in within a second.
    asyncio.constants.ACCEPT_RETRY_DELAY = ACCEPT_RETRY_SECONDS  # type: ignore[misc,assignment]  # typeshed: Final
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


class DeadlineProtocol(SendDeadline, HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline on receiving each request (see the module's docstring).

    The client's turn is either the head of a request (no earlier request still being answered, its
    deadline counted from the last answer) or a body; otherwise it is the app's turn, with no deadline.
    """

    # A stream transport, as uvicorn's own override narrows it.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # A response's head and body in one send (serve/writes.py); the socket options below are the socket's.
        self._writes = CoalescingTransport(transport, self.loop)
        super().connection_made(self._writes)
        self._since = self.loop.time()  # when the current wait for the client began
        self._body_bytes = 0
        self._in_body = False  # between a request's head and the end of its body
        self._head_begun = False  # some bytes of the next request's head have arrived
        self._heads = 0  # requests begun on this connection
        self._head_bytes = 0  # of that head, in reads after the one it began in
        self._running: RequestResponseCycle | None = None  # the request being answered (others may be queued)
        self._timer: asyncio.TimerHandle | None = None
        self._limit_unsent(transport)  # the send deadline's (serve/sending.py)
        self._arm()
        _open.add(self)
        if len(_open) > max_connections():
            dropped.add("crowded out", _make_room(1, spare_new=True))

    def connection_lost(self, exc: Exception | None) -> None:
        _open.discard(self)
        self._disconnect()  # uvicorn tells the last request parsed; a pipelined one may be the one answered
        self._writes.discard()  # what it still keeps has nowhere to go
        self._disarm()
        self._unwatch_send()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        continued = self._head_begun and not self._in_body  # a head that began in an earlier read
        heads = self._heads
        super().data_received(data)
        # Still that head: all of this read is part of it.
        if continued and self._heads == heads and self._head_begun and not self._in_body:
            self._head_bytes += len(data)
            if self._head_bytes > HEAD_MAX_BYTES and not self.transport.is_closing():
                self.send_400_response(f"request head larger than {HEAD_MAX_BYTES // 1024} KiB\n")
        if self._timer is None:
            self._arm()

    # The parser's callbacks, during data_received: where the client is in its request.
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_begun, self._head_bytes = True, 0
        self._heads += 1

    def on_headers_complete(self) -> None:
        self._in_body, self._head_begun = True, False
        self._since, self._body_bytes = self.loop.time(), 0
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        if not self._answering():  # answered already (refused from its headers): the next head is due now
            self._since = self.loop.time()
        super().on_message_complete()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        self._running = cycle
        super()._start_asgi_task(cycle, app)

    def _answering(self) -> bool:
        """Whether a request is being answered, or waits for its turn (pipelined)."""
        return bool(self.pipeline) or (self._running is not None and not self._running.response_complete)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self._in_body and not self._answering():  # the next request's head is due from now
            self._since = self.loop.time()
        self._arm()
        self._watch_flush()  # the answer said `connection: close`

    def pause_writing(self) -> None:
        super().pause_writing()
        self._watch_send(SEND_SECONDS)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._unwatch_send()
        self._watch_flush()

    def timeout_keep_alive_handler(self) -> None:
        super().timeout_keep_alive_handler()
        self._watch_flush()

    def send_400_response(self, msg: str) -> None:
        super().send_400_response(msg)
        self._watch_flush()

    def shutdown(self) -> None:
        super().shutdown()
        self._watch_flush()

    def _lost(self) -> bool:
        return self not in _open

    def _deadline(self) -> float | None:
        if self._in_body:
            return self._since + BODY_GRACE_SECONDS + self._body_bytes / BODY_MIN_BYTES_PER_SECOND
        if self._answering():
            return None  # the request is in: the app's turn, not the client's
        return self._since + HEAD_SECONDS

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
        if self._in_body:
            answer = self.cycle is not None and not self.cycle.response_started
        else:  # silent on an idle keep-alive connection: no request to answer
            answer = self._head_begun
        if answer:
            self.transport.write(_plain_response(status, reason, message))
        self.pipeline.clear()
        self._disconnect()
        self.transport.close()
        self._watch_flush()

    def _disconnect(self) -> None:
        """The requests being answered see a disconnect (their app stops waiting for a body)."""
        for cycle in (self._running, self.cycle):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
