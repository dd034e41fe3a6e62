"""Run uvicorn with TCP_NODELAY on every connection, whatever the number of workers.

asyncio turns Nagle's algorithm off on each accepted TCP socket, but only when
the socket says it is TCP (``proto == IPPROTO_TCP``). One uvicorn worker lets
asyncio open the listening socket, which says so; with ``--workers N`` uvicorn
opens it itself as ``socket.socket(family)``, whose ``proto`` is 0, so every
accepted socket kept Nagle on. A response written in two sends (headers, then
body) then waited for the client's delayed ACK, about 40 ms on Linux, on every
keep-alive request: /health fell from thousands of requests/s to 22.

The listening socket gets TCP_NODELAY here instead; Linux copies it to each
socket ``accept`` returns, in every worker.
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess


class NoDelayConfig(uvicorn.Config):
    """A uvicorn Config whose shared listening socket (several workers) has Nagle's algorithm off."""

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def run(app: str, workers: int = 1, **options: Any) -> None:
    """``uvicorn.run(app, workers=workers, **options)``, with TCP_NODELAY when workers share a socket."""
    if workers <= 1:
        uvicorn.run(app, workers=1, **options)  # asyncio's own listening socket: NODELAY already
        return
    config = NoDelayConfig(app, workers=workers, **options)
    sock = config.bind_socket()
    try:
        Multiprocess(config, sockets=[sock]).run()
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
