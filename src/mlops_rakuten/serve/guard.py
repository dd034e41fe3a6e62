"""Untrusted requests bounded before their body is read: token and role first, then a size cap per route.

FastAPI reads (and parses) a whole body before it runs a route's dependencies,
so a route's own token check comes too late: a 1 GB body without any token
was read into memory before the 401. This pure ASGI middleware answers from
the headers alone: 401/403 when the token does not open the route, 413 when
Content-Length is over the route's cap, and 413 again if a body sent without
Content-Length (chunked) grows past it while streaming.
"""

from __future__ import annotations

from fastapi import HTTPException, status
from fastapi.responses import JSONResponse

from mlops_rakuten.serve.auth import current_user, forbidden
from mlops_rakuten.serve.settings import MAX_UPLOAD_BYTES, PREDICT_MAX_BYTES, TOKEN_MAX_BYTES

# Multipart framing around the CSV: boundaries and part headers, generously.
MULTIPART_SLACK = 64 * 2**10
# Routes without a body (GET, POST /train) still get a small cap rather than none.
DEFAULT_MAX_BYTES = 16 * 2**10
BODY_LIMITS = {"/predict": PREDICT_MAX_BYTES, "/ingest": MAX_UPLOAD_BYTES + MULTIPART_SLACK,
               "/token": TOKEN_MAX_BYTES}


def body_limit(path: str) -> int:
    return BODY_LIMITS.get(path, DEFAULT_MAX_BYTES)


def required_role(path: str) -> str | None:
    """The role a path needs (None: open to anyone, or not a route at all and so a 404)."""
    if path in ("/ingest", "/train") or path.startswith("/train/"):
        return "admin"
    if path in ("/predict", "/info"):
        return "user"
    return None


def _too_large(limit: int) -> HTTPException:
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                         detail=f"request body larger than {limit} bytes, the limit of this route")


class GuardMiddleware:
    def __init__(self, app, state):
        self.app = app
        self.state = state  # app.state: settings and users

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        try:
            limit = self._check_headers(scope)
        except HTTPException as exc:
            response = JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
            return await response(scope, receive, send)
        received, complete = 0, False

        async def bounded_receive():
            nonlocal received, complete
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > limit:
                    # Raised inside the route's body parsing: FastAPI re-raises an HTTPException as is.
                    raise _too_large(limit)
            elif message["type"] == "http.disconnect" and not complete:
                # The client left (or was cut off for sending too slowly) mid-body: an answer nobody reads,
                # rather than Starlette's ClientDisconnect and a traceback in the log for each.
                raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="the client disconnected before its body ended")
            return message

        await self.app(scope, bounded_receive, send)

    def _check_headers(self, scope) -> int:
        headers = {}
        for key, value in scope["headers"]:
            if key in (b"authorization", b"content-length"):
                headers[key] = value.decode("latin-1")
        role = required_role(scope["path"])
        if role is not None:
            authorization = headers.get(b"authorization", "")
            scheme, _, token = authorization.partition(" ")
            user = current_user(self.state.settings, self.state.users,
                                token.strip() if scheme.lower() == "bearer" else None)
            if not user.can(role):
                raise forbidden(user, role)
        limit = body_limit(scope["path"])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.strip().isdigit():
                raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"Content-Length {length!r} is not a number")
            if int(length) > limit:
                raise _too_large(limit)
        return limit
