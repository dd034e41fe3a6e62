"""POST /token: the OAuth2 password form in, a bearer token out (rate-limited, see ``login_limits``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from mlops_rakuten.serve.auth import create_token
from mlops_rakuten.serve.guard import body_limit
from mlops_rakuten.serve.responses import responses
from mlops_rakuten.serve.settings import TOKEN_MAX_BYTES

router = APIRouter(tags=["auth"])
NAME_KEY_CHARS = 128  # a user name longer than any real one still costs one bounded key


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


@router.post(
    "/token", response_model=Token, openapi_extra=body_limit(TOKEN_MAX_BYTES), responses=responses(400, 401, 413, 429)
)
async def login(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
    """async: the limits are checked on the event loop; argon2 runs in a thread, a bounded number at once."""
    state = request.app.state
    limits = state.login_limits
    address = request.client.host if request.client else "unknown"
    name_key = form.username[:NAME_KEY_CHARS]
    wait = limits.retry_after(address, name_key)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(wait)},
            detail=f"too many login attempts from this address or for this user; retry in {wait} s",
        )
    limits.waiting += 1
    try:
        async with limits.hashing:
            user = await run_in_threadpool(state.users.authenticate, form.username, form.password)
    finally:
        limits.waiting -= 1
    if user is None:
        limits.failed(name_key)
        # One answer for a wrong name, a wrong password and an inactive account: no hint to a guesser.
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="wrong user name or password, or inactive user",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token, lifetime = create_token(state.settings, user)
    return Token(access_token=token, expires_in=lifetime)
