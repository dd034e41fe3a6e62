"""POST /predict: one product's title (and description) in, its top-k classes out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlops_rakuten.categories import CODES
from mlops_rakuten.predict import SCORE_HELP, as_records
from mlops_rakuten.serve.auth import require_user
from mlops_rakuten.serve.settings import MAX_DESCRIPTION_CHARS, MAX_DESIGNATION_CHARS
from mlops_rakuten.serve.users import User
from mlops_rakuten.text import product_text

router = APIRouter(tags=["predict"])


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt "descripton" is an error, not silently ignored

    designation: str = Field(min_length=1, max_length=MAX_DESIGNATION_CHARS, description="product title")
    description: str | None = Field(None, max_length=MAX_DESCRIPTION_CHARS, description="HTML allowed")
    top_k: int = Field(3, ge=1, le=len(CODES), description="how many classes to return, best first")

    @model_validator(mode="after")
    def _has_text(self) -> "PredictRequest":
        if not product_text(self.designation, self.description):
            raise ValueError("designation and description hold no text once HTML tags are stripped")
        return self


class Prediction(BaseModel):
    prdtypecode: int
    category: str
    score: float


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    model_version: str = Field(description="md5 of the model file, as dvc.lock records it")
    score: str = SCORE_HELP


@router.post("/predict", response_model=PredictResponse)
async def predict(body: PredictRequest, request: Request, _: Annotated[User, Depends(require_user)]) -> dict:
    """async: the model runs in a thread through the batcher, so the event loop stays free meanwhile."""
    state = request.app.state
    model = state.model.current()
    if model is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            detail=f"no model loaded ({state.model.error}); an admin can POST /train")
    known = len(model.pipeline.classes_)
    if body.top_k > known:  # checked here: one bad top_k must not fail a whole batch
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail=f"top_k must be at most {known}, the number of classes this model knows")
    codes, scores, used = await state.batcher.predict(body.designation, body.description or "", body.top_k)
    state.metrics.predictions.labels(str(codes[0])).inc()
    return {"predictions": as_records(codes, scores), "model_version": used.md5}
