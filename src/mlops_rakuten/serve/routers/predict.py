"""POST /predict: one product (or a list of them) in, the top-k classes of each out, in order."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Awaitable, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from mlops_rakuten.core.categories import CODES, DEFAULT_TOP_K
from mlops_rakuten.core.predict import SCORE_HELP, as_records
from mlops_rakuten.serve.auth import require_user
from mlops_rakuten.serve.batching import NoText
from mlops_rakuten.serve.guard import body_limit
from mlops_rakuten.serve.responses import field_error, responses
from mlops_rakuten.serve.settings import (
    MAX_DESCRIPTION_CHARS,
    MAX_DESIGNATION_CHARS,
    MAX_PREDICT_PRODUCTS,
    PREDICT_MAX_BYTES,
)
from mlops_rakuten.serve.users import User

router = APIRouter(tags=["predict"])
T = TypeVar("T")


# Some character that text cleaning keeps: not one of Python's whitespace, which it collapses. Spelt out,
# as "\S" differs between regex engines: to JSON Schema validators (ECMA, Rust) the separators
# \x1c-\x1f and \x85 are not space, so a title of them was schema-valid, then 422 "no text".
PYTHON_WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())  # none above U+3000
HAS_TEXT = f"[^{PYTHON_WHITESPACE}]"


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt "descripton" is an error, not silently ignored

    designation: str = Field(
        min_length=1,
        max_length=MAX_DESIGNATION_CHARS,
        pattern=HAS_TEXT,
        description="product title: some text besides whitespace (and besides HTML "
        "tags, which are stripped: a title of tags alone is refused with 422)",
    )
    description: str | None = Field(None, max_length=MAX_DESCRIPTION_CHARS, description="HTML allowed")
    top_k: int = Field(DEFAULT_TOP_K, ge=1, le=len(CODES), description="how many classes to return, best first")


class Prediction(BaseModel):
    prdtypecode: int
    category: str
    score: float


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    model_version: str = Field(description="md5 of the model file, as dvc.lock records it")
    score: str = SCORE_HELP


_ONE = TypeAdapter(PredictRequest)
_MANY = TypeAdapter(Annotated[list[PredictRequest], Field(min_length=1, max_length=MAX_PREDICT_PRODUCTS)])
_PRODUCT_SCHEMA = PredictRequest.model_json_schema()
# The body is parsed here rather than by FastAPI: a union of one product and a list would report every
# error twice, once per alternative, with the alternative's name inside ``loc``.
_BODY_DOC = {
    "requestBody": {
        "required": True,
        "description": (
            f"one product, or a list of 1 to {MAX_PREDICT_PRODUCTS} products answered in the same order; "
            f"bodies over {PREDICT_MAX_BYTES // 2**20} MiB are refused with 413"
        ),
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        _PRODUCT_SCHEMA,
                        {"type": "array", "items": _PRODUCT_SCHEMA, "minItems": 1, "maxItems": MAX_PREDICT_PRODUCTS},
                    ]
                }
            }
        },
    }
}


async def _products(request: Request) -> tuple[list[PredictRequest], list[list[str | int]], bool]:
    """The products, where each sits in the body (for error locations), and whether a list was sent."""
    raw = await request.body()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise RequestValidationError(
            [{"loc": ["body", getattr(exc, "pos", 0)], "msg": "JSON decode error", "type": "json_invalid"}]
        ) from None
    except RecursionError:  # arrays or objects nested ~1,000 deep: no product is shaped like that
        raise RequestValidationError(
            [
                {
                    "loc": ["body"],
                    "msg": "JSON nested too deeply (a product is an object of strings and a number)",
                    "type": "json_invalid",
                }
            ]
        ) from None
    many = isinstance(data, list)
    try:
        products = _MANY.validate_python(data) if many else [_ONE.validate_python(data)]
    except ValidationError as exc:
        raise RequestValidationError(
            [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        ) from None
    return products, ([["body", i] for i in range(len(products))] if many else [["body"]]), many


async def _settled(answer: Awaitable[T]) -> T | Exception:
    """The answer, or the exception it raised, as ``gather(..., return_exceptions=True)`` gives them."""
    try:
        return await answer
    except Exception as exc:  # cancellation still propagates
        return exc


@router.post(
    "/predict",
    response_model=PredictResponse | list[PredictResponse],
    openapi_extra={**_BODY_DOC, **body_limit(PREDICT_MAX_BYTES)},
    responses=responses(400, 401, 403, 413, 422, 503),
)
async def predict(request: Request, user: Annotated[User, Depends(require_user)]) -> dict | list[dict]:
    """async: the model runs in a thread through the batcher, so the event loop stays free meanwhile."""
    products, where, many = await _products(request)
    state = request.app.state
    model = state.model.current()
    if model is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            # Why (a path on the server) is in the log and an admin's /info, not in an answer to any user.
            detail="no model loaded; an admin sees why on GET /info and can POST /train",
        )
    known = len(model.pipeline.classes_)
    errors = [
        field_error([*loc, "top_k"], f"top_k must be at most {known}, the number of classes this model knows")
        for loc, product in zip(where, products, strict=True)
        if product.top_k > known
    ]
    if errors:  # checked here: one bad top_k must not fail a whole batch
        raise RequestValidationError(errors)
    asked = [state.batcher.predict(p.designation, p.description or "", p.top_k) for p in products]
    # One product (the usual request): awaited as it is; gather's task for it cost ~5 % of a worker under load.
    answers = [await _settled(asked[0])] if len(asked) == 1 else await asyncio.gather(*asked, return_exceptions=True)
    errors = [
        field_error(loc, str(answer)) for loc, answer in zip(where, answers, strict=True) if isinstance(answer, NoText)
    ]
    if errors:
        raise RequestValidationError(errors)
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    results = []
    for product, answer in zip(products, answers, strict=True):
        codes, scores, used = answer  # type: ignore[misc]  # exceptions were raised above
        state.metrics.predictions.labels(str(codes[0])).inc()
        state.prediction_log.append(product.designation, product.description or "", codes, scores, used, user.name)
        results.append({"predictions": as_records(codes, scores), "model_version": used.md5})
    return results if many else results[0]
