"""The error bodies every route documents in the OpenAPI schema, one place for their shapes and meaning."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Error(BaseModel):
    detail: str


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrors(BaseModel):
    """422: where the request is wrong (``loc``) and how (``msg``)."""

    detail: list[FieldError]


class Reject(BaseModel):
    row: int
    reasons: list[str]


class IngestProblem(BaseModel):
    """Why nothing was added: the file itself (``message`` only) or every row refused (with each reason)."""

    message: str
    received: int = 0
    accepted: int = 0
    rejected: int = 0
    rejects: list[Reject] = []


class IngestRejected(BaseModel):
    """422 of /ingest: a request not following the schema (a list), or an upload with nothing to add."""

    detail: list[FieldError] | IngestProblem


MEANING = {
    400: (Error, "malformed request (unreadable body or Content-Length)"),
    401: (Error, "no token, or an expired, invalid or revoked one; or a wrong login"),
    403: (Error, "the user's role does not allow this route"),
    404: (Error, "no such training job"),
    409: (Error, "a training run or an ingest is in progress"),
    413: (Error, "request body larger than this route accepts"),
    422: (ValidationErrors, "the request does not follow the schema"),
    429: (Error, "too many login attempts: wait Retry-After seconds"),
    500: (Error, "the change could not be completed (the message says what was and was not done)"),
    503: (Error, "no model loaded yet"),
}


def responses(*codes: int, **overrides: Any) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each code with its body model and meaning (``overrides``: {"422": {...}})."""
    documented: dict[int | str, dict[str, Any]] = {
        code: {"model": MEANING[code][0], "description": MEANING[code][1]} for code in codes
    }
    for code, spec in overrides.items():
        documented[int(code.lstrip("_"))] = spec
    return documented


def field_error(loc: list[str | int], msg: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": "value_error"}
