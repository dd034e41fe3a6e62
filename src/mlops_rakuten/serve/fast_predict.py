"""POST /predict answered without FastAPI's per-request machinery: the same route code, the same bytes.

Under load (one worker, single products), FastAPI's routing, dependency solving and response
validation were about a third of the event loop's busy time per /predict: the route table walked,
the dependency graph solved, query parameters parsed, exit stacks and telemetry contexts entered,
for a route whose only dependency is the bearer user. This pure ASGI middleware sits innermost
(the forwarded-header, metrics and guard middleware still run first, and Starlette's error
middleware still turns an unhandled exception into a 500), takes exactly ``POST /predict``, and
runs what FastAPI would have run for it:

- the route's dependency, ``require_user`` with the token as ``OAuth2PasswordBearer`` reads it;
- the route's own function, ``routers.predict.predict``;
- its answer validated and serialised by pydantic for the route's response model, as FastAPI does
  (``validate_python(..., from_attributes=True)``, then ``dump_json``), sent as
  ``Response(media_type="application/json")``;
- an exception handed to the app's own exception handlers, looked up as Starlette's
  ExceptionMiddleware does (by status code for an HTTPException, then along the class's MRO).

Every other method and path goes on to FastAPI, and the route stays in the app for the OpenAPI
document. tests/test_serve_fast_predict.py sends the same requests, good and bad, over HTTP to an
app with and one without this path, and compares status, headers and body bytes.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from pydantic import TypeAdapter
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mlops_rakuten.serve.auth import bearer_token, require_user
from mlops_rakuten.serve.routers.predict import PredictResponse, predict

PATH = "/predict"
_ANSWER = TypeAdapter(PredictResponse | list[PredictResponse])  # the route's response_model


def _handler(handlers: Mapping[Any, Callable], exc: Exception) -> Callable | None:
    """The app's handler for ``exc``, chosen as Starlette's ExceptionMiddleware chooses it (500 and Exception
    belong to the outer error middleware, which the exception then reaches unhandled)."""
    if isinstance(exc, HTTPException) and exc.status_code != 500 and exc.status_code in handlers:
        return handlers[exc.status_code]
    for cls in type(exc).__mro__:
        if cls is not Exception and cls in handlers:
            return handlers[cls]
    return None


class FastPredict:
    def __init__(self, app: ASGIApp, exception_handlers: Mapping[Any, Callable]) -> None:
        self.app = app
        self.handlers = exception_handlers  # the app's own dict, as registered on it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST" or scope.get("root_path"):
            return await self.app(scope, receive, send)
        request = Request(scope, receive)
        try:
            user = await require_user(request, await bearer_token(request))
            answer = await predict(request, user)
            content = _ANSWER.dump_json(_ANSWER.validate_python(answer, from_attributes=True))
            response = Response(content, media_type="application/json")
        except Exception as exc:
            handler = _handler(self.handlers, exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)
