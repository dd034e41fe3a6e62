"""Which client address the app believes behind proxies (serve/forwarded.py), and its login limit without nginx.

Each proxy appends the address it got the request from to X-Forwarded-For; what sits to the left of
the entries trusted proxies appended is whatever the client wrote. The table checks the rule on its
own; the server test sends 40 wrong logins straight to a real `rakuten serve` trusting every peer
(`RAKUTEN_TRUSTED_PROXIES=*`, the container stack's setting), each naming another address on the
left, as if through a proxy that appends: the per-address limit must still answer 429.
"""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from mlops_rakuten.serve.forwarded import TrustedProxies

from serve_support import build_project, free_port, make_settings, start_server, stop

PROXY = "198.51.100.7"  # the address an appending proxy saw


@pytest.mark.parametrize(
    "trusted, peer, forwarded, client",
    [
        ("*", "10.0.0.2", "203.0.113.9", "203.0.113.9"),  # nginx's $remote_addr, alone
        ("*", "10.0.0.2", f"1.2.3.4, {PROXY}", PROXY),  # the left one is the client's own claim
        ("*", "10.0.0.2", f"1.2.3.4,{PROXY} , ", PROXY),  # spaces and an empty entry are no address
        ("*", "10.0.0.2", None, "10.0.0.2"),  # no header: the peer
        ("127.0.0.1", "127.0.0.1", f"1.2.3.4, {PROXY}", PROXY),
        ("127.0.0.1", "10.9.9.9", f"1.2.3.4, {PROXY}", "10.9.9.9"),  # an untrusted peer's header is ignored
        ("127.0.0.1, 10.0.0.0/8", "10.1.2.3", f"1.2.3.4, {PROXY}, 10.4.5.6, 127.0.0.1", PROXY),  # two proxies
        ("10.0.0.0/8", "10.1.2.3", "10.4.5.6, 10.7.8.9", "10.4.5.6"),  # only proxies: the farthest
        ("::1", "::1", "2001:db8::1", "2001:db8::1"),
        ("*", "10.0.0.2", "[2001:db8::1]:4711", "2001:db8::1"),  # a port is not part of the address
        ("*", "10.0.0.2", "203.0.113.9:80", "203.0.113.9"),
        ("*", "10.0.0.2", "x" * 5000, "x" * 64),  # not an address: a bounded key all the same
    ],
)
def test_the_client_is_the_nearest_address_no_trusted_proxy_appended(trusted, peer, forwarded, client):
    assert TrustedProxies(trusted).client(peer, forwarded) == client


@pytest.mark.server
def test_without_nginx_a_varying_forwarded_prefix_does_not_escape_the_login_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("RAKUTEN_TRUSTED_PROXIES", "*")
    settings = make_settings(build_project(tmp_path / "project", trained=False), tmp_path / "secrets")
    # The defaults: 20 attempts per address and minute; every attempt a new name, so only the address counts.
    strict = dataclasses.replace(settings, login_per_minute=20, login_failures_per_minute=5)
    port = free_port()
    server = start_server(strict, port, tmp_path / "server.log")
    statuses = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
            for i in range(40):
                answer = api.post(
                    "/token",
                    data={"username": f"guess{i}", "password": "wrong-password"},
                    headers={"X-Forwarded-For": f"10.1.{i // 250}.{i % 250}, {PROXY}"},
                )
                statuses.append(answer.status_code)
                if answer.status_code == 429:  # the address's limit (each name was tried once)
                    assert "from this address" in answer.json()["detail"]
    finally:
        stop(server)
    # 20 at once, then one more every 3 s: the argon2 checks take that long on a busy machine.
    assert statuses[:20] == [401] * 20 and statuses.count(429) >= 10, statuses
