"""Untrusted requests bounded before their body is read: token and role first, then a size cap per route.

FastAPI reads (and parses) a whole body before it runs a route's dependencies,
so a route's own token check comes too late: a 1 GB body without any token
was read into memory before the 401. This pure ASGI middleware answers from
the headers alone: 401/403 when the token does not open the route, 413 when
Content-Length is over the route's cap, and 413 again if a body sent without
Content-Length (chunked) grows past it while streaming.

Each route declares both where it is written, and nowhere else: its role is its
``require(role)`` dependency, its cap ``openapi_extra=body_limit(N)`` (which the
OpenAPI schema shows as ``x-max-body-bytes``). ``route_rules`` reads them from the
app's routes, and refuses to start an app with a route that accepts a body
(POST, PUT, PATCH) and declares no cap: a new route cannot silently get a default.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from fastapi import HTTPException, status
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlops_rakuten.serve.auth import current_user, forbidden

# Routes that take no body (GET, POST /train) still get a small cap rather than none.
NO_BODY_MAX_BYTES = 16 * 2**10
_LIMIT_KEY = "x-max-body-bytes"
KNOWN_PATHS = 1024  # (method, path) pairs whose rule is remembered
_BODY_METHODS = {"POST", "PUT", "PATCH"}


def body_limit(max_bytes: int) -> dict:
    """``openapi_extra=`` for a route: the largest body it reads, enforced by the guard, shown in the schema."""
    return {_LIMIT_KEY: max_bytes}


@dataclass(frozen=True)
class Rule:
    path: re.Pattern
    methods: frozenset[str]
    role: str | None  # None: open to anyone
    max_bytes: int


def _role(route: APIRoute) -> str | None:
    """The role of the route's ``require(role)`` dependency (admins hold every role), if it has one."""
    pending, roles = [route.dependant], set[str | None]()
    while pending:
        dependant = pending.pop()
        roles.update(getattr(d.call, "role", None) for d in dependant.dependencies)
        pending.extend(dependant.dependencies)
    roles.discard(None)
    if len(roles) > 1:
        named = sorted(str(role) for role in roles)
        raise RuntimeError(f"route {route.path} requires several roles: {named}")
    return roles.pop() if roles else None


def route_rules(routes: list) -> list[Rule]:
    """Role and body cap of every API route; RuntimeError for a route that reads a body with no declared cap."""
    rules = []
    for route in routes:
        if not isinstance(route, APIRoute):
            continue  # the OpenAPI document and its pages: GET, open to anyone
        declared = (route.openapi_extra or {}).get(_LIMIT_KEY)
        methods = route.methods or set()
        if declared is None and methods & _BODY_METHODS:
            raise RuntimeError(
                f"route {sorted(methods)} {route.path} declares no body limit: add openapi_extra=body_limit(N) to it"
            )
        rules.append(Rule(route.path_regex, frozenset(methods), _role(route), declared or NO_BODY_MAX_BYTES))
    return rules


def _too_large(limit: int) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE, detail=f"request body larger than {limit} bytes, the limit of this route"
    )


class GuardMiddleware:
    def __init__(self, app: ASGIApp, state: State, rules: list[Rule]) -> None:
        self.app = app
        self.state = state  # app.state: settings and users
        self.rules = rules
        # The rule of a (path, method), remembered: matching every route's regex was ~1 % of a /predict.
        # Bounded, since paths are whatever clients send.
        self._rule = functools.lru_cache(maxsize=KNOWN_PATHS)(self._match)

    def _match(self, path: str, method: str) -> tuple[str | None, int]:
        """The role and cap of the route at ``path`` (None and the small cap: not a route, so a 404)."""
        matching = [rule for rule in self.rules if rule.path.match(path)]
        for rule in sorted(matching, key=lambda rule: method not in rule.methods):
            return rule.role, rule.max_bytes
        return None, NO_BODY_MAX_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        try:
            limit = self._check_headers(scope)
        except HTTPException as exc:
            response = JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
            return await response(scope, receive, send)
        received, complete = 0, False

        async def bounded_receive() -> Message:
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

    def _check_headers(self, scope: Scope) -> int:
        headers = {}
        for key, value in scope["headers"]:
            if key in (b"authorization", b"content-length"):
                headers[key] = value.decode("latin-1")
        role, limit = self._rule(scope["path"], scope["method"])
        if role is not None:
            authorization = headers.get(b"authorization", "")
            scheme, _, token = authorization.partition(" ")
            user = current_user(
                self.state.settings, self.state.users, token.strip() if scheme.lower() == "bearer" else None
            )
            if not user.can(role):
                raise forbidden(user, role)
        length = headers.get(b"content-length")
        if length is not None:
            if not length.strip().isdigit():
                raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"Content-Length {length!r} is not a number")
            if int(length) > limit:
                raise _too_large(limit)
        return limit
