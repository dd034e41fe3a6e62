"""The client's address behind proxies: the nearest X-Forwarded-For entry that no trusted proxy is.

Each proxy appends the address it received the request from; everything to the left of what the
trusted proxies appended is whatever the client wrote. So the list is walked from the right, and the
first address that is not a trusted proxy is the client (the per-address login limit counts it).
uvicorn's own handling believes the leftmost entry when every peer is trusted (``*``): 40 wrong
logins, each claiming another address on the left, then all got through.

RAKUTEN_TRUSTED_PROXIES (default 127.0.0.1: nginx on the same host): addresses and networks
(``10.0.0.0/8``), comma-separated, whose X-Forwarded-For is believed; a request from any other peer
is that peer. ``*`` trusts every peer as a proxy, never the entries it forwards: the client is the
rightmost entry, the one the nearest proxy appended (the container stack, where only nginx reaches
the app and sets the header to the address it saw). A client that can reach the app directly under
``*`` names any address it likes: use ``*`` only where a proxy is the one way in.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Union

from starlette.types import ASGIApp, Receive, Scope, Send

KNOWN_HOSTS = 1024  # addresses whose trust is remembered
MAX_KEY_CHARS = 64  # an IPv6 address with a zone is shorter; anything longer is not an address
_Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


def _address(entry: str) -> str:
    """An X-Forwarded-For entry without its port (``1.2.3.4:80``, ``[2001:db8::1]:80``), bounded."""
    entry = entry.strip()
    if entry.startswith("[") and "]" in entry:
        entry = entry[1 : entry.index("]")]
    elif entry.count(":") == 1:
        entry = entry.partition(":")[0]
    return entry[:MAX_KEY_CHARS]


class TrustedProxies:
    def __init__(self, spec: str):
        entries = [item.strip() for item in spec.split(",") if item.strip()]
        self.everyone = "*" in entries
        self.networks: list[_Network] = []
        self.names: set[str] = set()  # not an IP (a unix socket's peer): compared as written
        # The peer is the same proxy request after request: its answer is kept (parsing the address was
        # ~1 % of a /predict). Bounded, as X-Forwarded-For entries are whatever a client wrote.
        self._trusts_host = functools.lru_cache(maxsize=KNOWN_HOSTS)(self._trusts)
        for item in entries:
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.names.add(item)

    def trusts(self, host: str) -> bool:
        if self.everyone:
            return True
        return self._trusts_host(host)

    def _trusts(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return host in self.names
        return any(address in network for network in self.networks)

    def client(self, peer: str, forwarded: str | None) -> str:
        """The client's address for a request from ``peer`` carrying X-Forwarded-For ``forwarded``."""
        if not forwarded or not self.trusts(peer):
            return peer
        hops = [address for address in map(_address, forwarded.split(",")) if address]
        if not hops:
            return peer
        if self.everyone:
            return hops[-1]
        for host in reversed(hops):
            if not self.trusts(host):
                return host
        return hops[0]  # only proxies: the farthest of them


class ForwardedMiddleware:
    """Sets the ASGI scope's client (and scheme, from X-Forwarded-Proto) from trusted proxies' headers."""

    def __init__(self, app: ASGIApp, trusted: TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("client"):
            peer = scope["client"][0]
            if self.trusted.trusts(peer):
                values = [value.decode("latin-1") for key, value in scope["headers"] if key == b"x-forwarded-for"]
                proto = [value for key, value in scope["headers"] if key == b"x-forwarded-proto"]
                client = self.trusted.client(peer, ", ".join(values))
                if client != peer:
                    scope["client"] = (client, 0)
                if proto and proto[-1].strip() in (b"http", b"https"):
                    scope["scheme"] = proto[-1].strip().decode()
        await self.app(scope, receive, send)
