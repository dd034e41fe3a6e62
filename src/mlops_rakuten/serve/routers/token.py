"""POST /token: the OAuth2 password form in, a bearer token out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from mlops_rakuten.serve.auth import create_token

router = APIRouter(tags=["auth"])


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


@router.post("/token", response_model=Token)
def login(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
    """Plain def: argon2 verification takes a while and runs in the thread pool, not the event loop."""
    state = request.app.state
    user = state.users.authenticate(form.username, form.password)
    if user is None:
        # One answer for a wrong name, a wrong password and an inactive account: no hint to a guesser.
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="wrong user name or password, or inactive user",
                            headers={"WWW-Authenticate": "Bearer"})
    token, lifetime = create_token(state.settings, user)
    return Token(access_token=token, expires_in=lifetime)
