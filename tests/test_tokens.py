"""Bearer tokens and the role check (serve/auth.py) called directly: no app, no login, no argon2.

The users file is written by hand with placeholder hashes: the token check never verifies a password.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import jwt
import pytest
from fastapi import HTTPException

import mlops_rakuten.serve.auth as auth
from mlops_rakuten.serve.auth import ALGORITHM, ISSUER, create_token, current_user, decode_token, forbidden, require
from mlops_rakuten.serve.settings import Settings
from mlops_rakuten.serve.users import User, UserStore

SECRET = "unit-test-secret-" + "0123456789abcdef" * 4  # 64+ bytes: long enough for HS512 too
NOW = 1_700_000_000


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    users = {
        "alice": {"hash": "x", "role": "admin", "active": True, "token_version": 0, "id": "a1"},
        "bob": {"hash": "x", "role": "user", "active": True, "token_version": 3, "id": "b2"},
        "carol": {"hash": "x", "role": "user", "active": False, "token_version": 0, "id": "c3"},
        "dan": {"hash": "x"},  # written by hand: no version, no id
    }
    (tmp_path / "users.json").write_text(json.dumps({"users": users}))
    return Settings(SECRET, tmp_path, tmp_path / "users.json", tmp_path / "state", token_minutes=7)


@pytest.fixture
def users(settings: Settings) -> UserStore:
    return UserStore(settings.users_file)


def sign(claims: dict) -> str:
    return jwt.encode(claims, SECRET, algorithm=ALGORITHM)


def valid(name: str = "bob", **extra) -> dict:
    return {"sub": name, "iat": int(time.time()), "exp": int(time.time()) + 60, "iss": ISSUER, **extra}


def refusal(call) -> HTTPException:
    with pytest.raises(HTTPException) as caught:
        call()
    return caught.value


def test_a_token_carries_the_user_and_expires_after_the_configured_minutes(settings):
    bob = User("bob", "user", True, 3, "b2")
    token, lifetime = create_token(settings, bob, now=NOW + 0.9)
    assert lifetime == 7 * 60
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims == {"sub": "bob", "role": "user", "iat": NOW, "exp": NOW + 420, "iss": ISSUER, "ver": 3, "uid": "b2"}


def test_a_token_without_a_time_given_is_issued_now(settings, monkeypatch):
    monkeypatch.setattr(auth.time, "time", lambda: NOW + 0.5)
    token, _ = create_token(settings, User("bob", "user", True))
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert (claims["iat"], claims["exp"]) == (NOW, NOW + 420)


def test_decode_gives_the_claims_of_a_good_token(settings):
    token, _ = create_token(settings, User("bob", "user", True, 3, "b2"))
    claims = decode_token(settings, token)
    assert claims["sub"] == "bob" and claims["ver"] == 3 and claims["iss"] == "mlops-rakuten"


def test_an_expired_token_says_so(settings):
    token, _ = create_token(settings, User("bob", "user", True), now=time.time() - 7 * 60 - 5)
    error = refusal(lambda: decode_token(settings, token))
    assert error.status_code == 401 and error.headers == {"WWW-Authenticate": "Bearer"}
    assert error.detail == "token expired: log in again at POST /token"


def _without(claim: str) -> Callable[[], str]:
    return lambda: sign({k: v for k, v in valid().items() if k != claim})


# Made when the test runs, not when pytest collects it: a token made at collection time expires
# (and then says so) when the suite takes longer than its lifetime to reach it.
@pytest.mark.parametrize(
    "make_token",
    [
        lambda: jwt.encode(valid(), "another-secret-" * 4, algorithm="HS256"),
        lambda: jwt.encode(valid(), SECRET, algorithm="HS512"),  # right secret, algorithm not ours
        lambda: sign({**valid(), "iss": "someone-else"}),
        *[_without(claim) for claim in ("sub", "exp", "iat", "iss")],
        lambda: "not-a-jwt",
    ],
    ids=["other-secret", "hs512", "other-issuer", "no-sub", "no-exp", "no-iat", "no-iss", "garbage"],
)
def test_a_token_not_ours_or_missing_a_claim_is_invalid(settings, make_token: Callable[[], str]):
    token = make_token()
    error = refusal(lambda: decode_token(settings, token))
    assert error.status_code == 401 and error.headers == {"WWW-Authenticate": "Bearer"}
    assert error.detail == "invalid token: signature, format or claims do not check out"


def test_no_token_is_not_authenticated(settings, users):
    for token in (None, ""):
        error = refusal(lambda token=token: current_user(settings, users, token))
        assert error.status_code == 401 and error.headers == {"WWW-Authenticate": "Bearer"}
        assert error.detail == "not authenticated: send 'Authorization: Bearer <token>' (get one at POST /token)"


def test_the_users_file_decides_who_the_token_is(settings, users):
    token, _ = create_token(settings, User("bob", "admin", True, 3, "b2"))  # the file says user
    assert current_user(settings, users, token) == User("bob", "user", True, 3, "b2")
    for name in ("carol", "nobody"):  # inactive, unknown
        token, _ = create_token(settings, User(name, "user", True, 0, "c3"))
        error = refusal(lambda token=token: current_user(settings, users, token))
        assert error.status_code == 401 and error.detail == f"user {name!r} is unknown or inactive"


@pytest.mark.parametrize(
    "extra",
    [{"ver": 2, "uid": "b2"}, {"ver": 3, "uid": "zz"}, {"uid": "b2"}, {"ver": 3}],
    ids=["old-version", "other-id", "no-version", "no-id"],
)
def test_a_token_of_another_version_or_id_is_revoked(settings, users, extra):
    error = refusal(lambda: current_user(settings, users, sign(valid("bob", **extra))))
    assert error.status_code == 401 and error.headers == {"WWW-Authenticate": "Bearer"}
    assert error.detail == "token revoked: log in again at POST /token"


def test_a_token_without_version_or_id_fits_a_user_without_them(settings, users):
    """A users file written by hand (version 0, no id) accepts tokens that carry neither."""
    assert current_user(settings, users, sign(valid("dan"))).name == "dan"
    assert current_user(settings, users, sign(valid("dan", ver=0, uid=""))).name == "dan"


def test_forbidden_names_the_role_needed_and_held():
    error = forbidden(User("bob", "user", True), "admin")
    assert error.status_code == 403
    assert error.detail == "this route needs role 'admin'; user 'bob' has role 'user'"


def call(dependency, settings: Settings, users: UserStore, token: str | None) -> User:
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(settings=settings, users=users)))
    return asyncio.run(dependency(request, token))


def test_require_lets_the_role_and_admins_through_and_forbids_the_rest(settings, users):
    alice, _ = create_token(settings, User("alice", "admin", True, 0, "a1"))
    bob, _ = create_token(settings, User("bob", "user", True, 3, "b2"))
    assert require("user").role == "user" and require("admin").role == "admin"  # type: ignore[attr-defined]
    assert call(require("user"), settings, users, bob).name == "bob"
    assert call(require("user"), settings, users, alice).name == "alice"
    assert call(require("admin"), settings, users, alice).name == "alice"
    error = refusal(lambda: call(require("admin"), settings, users, bob))
    assert error.status_code == 403 and "needs role 'admin'" in str(error.detail)
    assert refusal(lambda: call(require("user"), settings, users, None)).status_code == 401
