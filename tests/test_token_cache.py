"""Verified tokens are remembered (serve/auth.py), never past their expiry nor instead of the users file."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
from fastapi import HTTPException

import mlops_rakuten.serve.auth as auth
from mlops_rakuten.serve.auth import ALGORITHM, ISSUER, current_user, decode_token
from mlops_rakuten.serve.settings import Settings
from mlops_rakuten.serve.users import UserStore

SECRET = "cache-test-secret-" + "0123456789abcdef" * 4


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    users = {"bob": {"hash": "x", "role": "user", "active": True, "token_version": 0, "id": "b2"}}
    (tmp_path / "users.json").write_text(json.dumps({"users": users}))
    return Settings(SECRET, tmp_path, tmp_path / "users.json", tmp_path / "state", token_minutes=7)


def token(exp: int, secret: str = SECRET) -> str:
    claims = {"sub": "bob", "iat": int(time.time()), "exp": exp, "iss": ISSUER, "ver": 0, "uid": "b2"}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def status_of(call) -> tuple[int, str]:
    with pytest.raises(HTTPException) as caught:
        call()
    return caught.value.status_code, str(caught.value.detail)


def test_a_remembered_token_still_expires(settings):
    soon = token(int(time.time()) + 1)
    assert decode_token(settings, soon)["sub"] == "bob"
    assert (settings.jwt_secret, soon) in auth._verified
    time.sleep(max(0.0, jwt.decode(soon, options={"verify_signature": False})["exp"] - time.time()) + 0.05)
    assert status_of(lambda: decode_token(settings, soon)) == (401, "token expired: log in again at POST /token")
    assert (settings.jwt_secret, soon) not in auth._verified


def test_a_refused_token_is_not_remembered(settings):
    forged = token(int(time.time()) + 60, secret="another-secret-" + "0" * 64)
    for _ in range(2):
        assert status_of(lambda: decode_token(settings, forged))[0] == 401
    assert (settings.jwt_secret, forged) not in auth._verified


def test_a_token_is_remembered_per_secret(settings, tmp_path):
    good = token(int(time.time()) + 60)
    assert decode_token(settings, good)["sub"] == "bob"
    other = Settings("other-secret-" + "0" * 64, tmp_path, settings.users_file, tmp_path / "state")
    assert status_of(lambda: decode_token(other, good))[0] == 401


def test_the_users_file_still_decides_for_a_remembered_token(settings):
    users = UserStore(settings.users_file)
    good = token(int(time.time()) + 60)
    assert current_user(settings, users, good).name == "bob"
    entry = {"hash": "x", "role": "user", "active": False, "token_version": 1, "id": "b2"}
    settings.users_file.write_text(json.dumps({"users": {"bob": entry}}))
    deadline = time.monotonic() + 5  # the store re-reads the file within a second of a change
    while time.monotonic() < deadline:
        try:
            current_user(settings, users, good)
        except HTTPException as exc:
            assert exc.status_code == 401
            return
        time.sleep(0.1)
    raise AssertionError("a deactivated user's remembered token still let him in")


def test_the_memory_is_bounded(settings, monkeypatch):
    monkeypatch.setattr(auth, "VERIFIED_TOKENS", 3)
    monkeypatch.setattr(auth, "_verified", {})
    tokens = [token(int(time.time()) + 60 + i) for i in range(5)]
    for each in tokens:
        decode_token(settings, each)
    assert [key[1] for key in auth._verified] == tokens[2:]
