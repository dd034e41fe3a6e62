"""Bearer tokens (HS256 JWT) and the role check every protected route depends on."""

from __future__ import annotations

import time
from typing import Awaitable, Callable

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer

from mlops_rakuten.serve.settings import Settings
from mlops_rakuten.serve.users import User, UserStore

ALGORITHM = "HS256"
ISSUER = "mlops-rakuten"

# auto_error=False: a missing token gets our message, not the library's generic one.
_bearer = OAuth2PasswordBearer(tokenUrl="token", auto_error=False)
bearer_token = _bearer  # awaited with a request: its token as the routes' dependency reads it, or None


def create_token(settings: Settings, user: User, now: float | None = None) -> tuple[str, int]:
    """A signed token for ``user`` and its lifetime in seconds."""
    issued = int(time.time() if now is None else now)
    lifetime = settings.token_minutes * 60
    claims = {
        "sub": user.name,
        "role": user.role,
        "iat": issued,
        "exp": issued + lifetime,
        "iss": ISSUER,
        "ver": user.token_version,
        "uid": user.id,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM), lifetime


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=message, headers={"WWW-Authenticate": "Bearer"})


# Tokens whose signature and claims checked out, by secret and token: a client sends the same token with
# every request, and checking its HMAC and claims again cost about a tenth of a /predict's CPU (twice:
# the guard and the route). Only tokens that passed are kept, so a client cannot fill this with junk;
# expiry is checked on every use. Bounded: the oldest entries go first once it is full.
VERIFIED_TOKENS = 4096
_verified: dict[tuple[str, str], dict] = {}


def decode_token(settings: Settings, token: str) -> dict:
    """The token's claims; 401 when it is expired, tampered with, or not ours."""
    key = (settings.jwt_secret, token)
    claims = _verified.get(key)
    if claims is not None:
        if claims["exp"] <= time.time():  # as PyJWT decides, without leeway
            del _verified[key]
            raise _unauthorized("token expired: log in again at POST /token")
        return claims
    claims = _decode(settings, token)
    if isinstance(claims["exp"], int):  # PyJWT also takes a numeric string, which the check above cannot compare
        if len(_verified) >= VERIFIED_TOKENS:
            del _verified[next(iter(_verified))]
        _verified[key] = claims
    return claims


def _decode(settings: Settings, token: str) -> dict:
    try:
        # Only HS256 is accepted, so a token claiming "none" or an RSA algorithm is refused.
        return jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["sub", "exp", "iat", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise _unauthorized("token expired: log in again at POST /token") from None
    except jwt.InvalidTokenError:
        raise _unauthorized("invalid token: signature, format or claims do not check out") from None


def current_user(settings: Settings, users: UserStore, token: str | None) -> User:
    if not token:
        raise _unauthorized("not authenticated: send 'Authorization: Bearer <token>' (get one at POST /token)")
    claims = decode_token(settings, token)
    # The users file, not the token, decides: a user deactivated or demoted since login loses access now.
    user = users.get(claims["sub"])
    if user is None or not user.active:
        raise _unauthorized(f"user {claims['sub']!r} is unknown or inactive")
    # Issued before a password change or deactivation, or to a removed user of the same name.
    if claims.get("ver", 0) != user.token_version or claims.get("uid", "") != user.id:
        raise _unauthorized("token revoked: log in again at POST /token")
    return user


def forbidden(user: User, role: str) -> HTTPException:
    return HTTPException(
        status.HTTP_403_FORBIDDEN, detail=f"this route needs role {role!r}; user {user.name!r} has role {user.role!r}"
    )


def require(role: str) -> Callable[..., Awaitable[User]]:
    """Dependency: the caller's user, who must hold ``role`` (admins hold every role)."""

    # async: a token check is microseconds of CPU, cheaper on the event loop than a hop to the thread pool.
    async def dependency(request: Request, token: str | None = Depends(_bearer)) -> User:
        state = request.app.state
        user = current_user(state.settings, state.users, token)
        if not user.can(role):
            raise forbidden(user, role)
        return user

    dependency.role = role  # type: ignore[attr-defined]  # read by the guard: the route's role, declared once
    return dependency


require_user = require("user")
require_admin = require("admin")
