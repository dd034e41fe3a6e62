"""One send per answer: a response's head and body, written in the same turn of the event loop, go out together.

uvicorn writes a response's head and its body separately, and on an idle socket asyncio sends each at
once: two send() calls per request. Over loopback (nginx in front) each send also runs the
receiver's TCP path, so they were a tenth of a worker's CPU under load. This transport keeps small
writes until the end of the current turn of the event loop and sends them as one. Anything else asked
of the transport (its buffer size, closing it, aborting it) sends what is kept first, so the send
deadlines and flow control of serve/connections.py see the same bytes as without it.
"""

from __future__ import annotations

import asyncio
from typing import Any

KEPT_BYTES = 16 * 2**10  # more than this waiting (a large answer): sent at once, as asyncio would


class CoalescingTransport(asyncio.Transport):
    """Wraps a stream transport; writes made in one turn of the loop reach it as one write."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._kept: list[bytes] = []
        self._kept_bytes = 0
        self._scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        self._kept.append(bytes(data))
        self._kept_bytes += len(data)
        if self._kept_bytes > KEPT_BYTES:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Send what is kept, as one write."""
        self._scheduled = False
        if self._kept:
            data = self._kept[0] if len(self._kept) == 1 else b"".join(self._kept)
            self._kept.clear()
            self._kept_bytes = 0
            self._transport.write(data)

    # Everything else: what is kept goes first, then the wrapped transport answers.
    def close(self) -> None:
        self.flush()
        self._transport.close()

    def discard(self) -> None:
        """Forget what is kept (the connection is gone)."""
        self._kept.clear()
        self._kept_bytes = 0

    def abort(self) -> None:
        self.discard()  # an abort drops the unsent bytes: these too
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        self.flush()
        return self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()
