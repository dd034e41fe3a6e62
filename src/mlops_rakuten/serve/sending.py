"""The send deadline of serve/connections.py: a client that does not take its answers loses its connection.

A client that never read its answers (1 KiB receive buffer, 400 pipelined GET /openapi.json) kept its
connection forever: answers filled the kernel's buffer (up to 4 MiB: tcp_wmem), then asyncio's, and
uvicorn waited for room. Now the kernel and the transport each hold at most UNSENT_BYTES of a
connection's unsent answers (TCP_NOTSENT_LOWAT, and the transport's high-water mark), pipelined
requests being answered one at a time; a transport paused for writing whose client takes less than
SEND_MIN_BYTES_PER_SECOND over SEND_SECONDS (FLUSH_SECONDS once the server closed it) is reset, which
drops the unsent bytes from the kernel too. Such connections are the first to make room at the limit.
"""

from __future__ import annotations

import asyncio
import socket
import struct

from mlops_rakuten.serve.closed import dropped

SEND_SECONDS = 10.0  # an answer waiting this long for the client to take SEND_MIN_BYTES_PER_SECOND: dropped
SEND_MIN_BYTES_PER_SECOND = 2**10
FLUSH_SECONDS = 5.0  # a closed connection's last bytes: the client takes them within this or is reset
UNSENT_BYTES = 32 * 2**10  # per connection, in the kernel, and as much in the transport (then it pauses)


class SendDeadline:
    """Mixed into the connection's protocol: watches its answers leave (see the module's docstring)."""

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    _stuck_since: float | None  # since when the client has not been taking its answers
    _send_timer: asyncio.TimerHandle | None
    _send_mark: int  # bytes waiting in the transport when the send deadline was last set

    def _limit_unsent(self, transport: asyncio.Transport) -> None:
        """At most UNSENT_BYTES of unsent answers in the kernel and as much in the transport."""
        self._stuck_since, self._send_timer, self._send_mark = None, None, 0
        sock = transport.get_extra_info("socket")
        if (
            sock is not None
            and sock.family in (socket.AF_INET, socket.AF_INET6)
            and hasattr(socket, "TCP_NOTSENT_LOWAT")
        ):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, UNSENT_BYTES)
            except OSError:
                pass  # a kernel without it: the send deadline still holds, over a larger kernel buffer
        transport.set_write_buffer_limits(high=UNSENT_BYTES)  # asyncio's default: 64 KiB

    def _lost(self) -> bool:
        raise NotImplementedError  # the protocol knows whether its connection is still open

    def _watch_send(self, seconds: float) -> None:
        """Reset the connection unless the client takes SEND_MIN_BYTES_PER_SECOND of its answer each ``seconds``."""
        if self._send_timer is None and not self._lost():
            self._stuck_since = self.loop.time()
            self._send_mark = self.transport.get_write_buffer_size()
            self._send_timer = self.loop.call_later(seconds, self._not_reading, seconds)

    def _watch_flush(self) -> None:
        """Closed with bytes still to send: the client has FLUSH_SECONDS to take them (asyncio would wait forever)."""
        if self.transport.is_closing() and self.transport.get_write_buffer_size():
            self._watch_send(FLUSH_SECONDS)

    def _unwatch_send(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        self._stuck_since = None

    def _not_reading(self, seconds: float) -> None:
        self._send_timer = None
        if self._lost():
            return
        left = self.transport.get_write_buffer_size()
        if self._send_mark - left >= SEND_MIN_BYTES_PER_SECOND * seconds:  # reading, slowly: another period
            self._send_mark = left
            self._send_timer = self.loop.call_later(seconds, self._not_reading, seconds)
            return
        dropped.add("not reading")
        self._reset()

    def _reset(self) -> None:
        """Abort with a reset: the unsent answer is dropped from the kernel too, not left for a client that never reads."""
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass  # already gone: the abort below is enough
        self.transport.abort()
