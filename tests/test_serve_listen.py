"""The listening socket several uvicorn workers share hands out connections with Nagle's algorithm off.

With Nagle on, every keep-alive response waited ~40 ms for the client's delayed ACK
(/health: 22 requests/s on one connection instead of thousands); `make bench-serve`
prints that rate for 1 and 2 workers.
"""

from __future__ import annotations

import socket

from mlops_rakuten.serve.listen import NoDelayConfig


def _nodelay(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_accepted_connections_have_nagle_off():
    config = NoDelayConfig("mlops_rakuten.serve.app:create_app", factory=True, host="127.0.0.1", port=0, workers=2)
    listening = config.bind_socket()
    try:
        assert _nodelay(listening)
        listening.listen()  # what each worker's asyncio server does with it
        with socket.create_connection(listening.getsockname()[:2]) as client:
            accepted, _ = listening.accept()
            with accepted:
                assert _nodelay(accepted), "an accepted socket would wait for delayed ACKs"
                assert not _nodelay(client)  # the option belongs to the server's side only
    finally:
        listening.close()


def test_uvicorns_own_socket_lacks_it():
    """Why the fix exists: uvicorn's multi-worker socket does not say it is TCP, so asyncio skips NODELAY."""
    import uvicorn

    config = uvicorn.Config("mlops_rakuten.serve.app:create_app", host="127.0.0.1", port=0, workers=2)
    listening = config.bind_socket()
    try:
        assert listening.proto != socket.IPPROTO_TCP
        assert not _nodelay(listening)
    finally:
        listening.close()
