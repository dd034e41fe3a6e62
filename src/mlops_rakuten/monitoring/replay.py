"""Replay: the prediction log a server would have written had it answered these products at this rate.

Each product is answered as POST /predict answers it (the model's own cleaning, top DEFAULT_TOP_K classes;
a product without text is refused there, so it is not logged here either) and its record is built by the
server's own log object (monitoring/prediction_log.py), timed ``start + i * 3600 / per_hour`` seconds. A
backtest of the drift alerts (`make bench-drift`) and a way to try them on a file of products before any
traffic exists.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import sklearn
from prometheus_client import CollectorRegistry
from sklearn.pipeline import Pipeline

from mlops_rakuten.core.atomic import atomic_open
from mlops_rakuten.core.categories import DEFAULT_TOP_K
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.predict import clean_texts, predict_top_k_cleaned
from mlops_rakuten.monitoring.prediction_log import LogSettings, PredictionLog, _Answered
from mlops_rakuten.ops.upload import read_upload

COLUMNS = ("designation", "description")  # the /ingest format's text columns; its prdtypecode is optional
OPTIONAL = ("prdtypecode", "productid", "imageid")
BATCH = 2_048  # products predicted at once: the server batches too; bounded memory for any file size


@dataclass(frozen=True)
class ReplayModel:
    """What the log's record builder reads of the model that answered (as the server's LoadedModel)."""

    pipeline: Pipeline
    md5: str


@dataclass(frozen=True)
class Replayed:
    path: Path
    logged: int
    no_text: int  # refused by /predict (no text once HTML is stripped): not logged
    first: str
    last: str


def read_products(path: Path) -> pd.DataFrame:
    """PRODUCTS.csv in the /ingest format (designation, description, prdtypecode optional), as strings."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    return read_upload(text, str(path), COLUMNS, OPTIONAL)


def answered(
    model: ReplayModel, products: pd.DataFrame, start: datetime, per_hour: float
) -> Iterator[_Answered | None]:
    """Per product, in order: what the server's log is handed, or None for a product /predict refuses."""
    step = 3600.0 / per_hour
    for first in range(0, len(products), BATCH):
        chunk = products.iloc[first : first + BATCH]
        frame = pd.DataFrame({"designation": chunk["designation"], "description": chunk["description"]})
        texts = clean_texts(model.pipeline, frame)
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            codes, scores = predict_top_k_cleaned(model.pipeline, texts, DEFAULT_TOP_K)
        has_text = (texts["text"] != "").to_numpy()
        for row in range(len(chunk)):
            if not has_text[row]:
                yield None
                continue
            when = start.timestamp() + (first + row) * step
            designation, description = frame.iloc[row]
            yield _Answered(when, designation, description, codes[row], scores[row], model)


def replay(
    model: ReplayModel, products: pd.DataFrame, folder: Path, start: datetime, per_hour: float, mode: str = "text"
) -> Replayed:
    """Write the log of ``products`` answered from ``start`` at ``per_hour`` into one new file of ``folder``
    (atomically: a failed replay leaves no file for drift to read)."""
    if not (per_hour > 0 and math.isfinite(per_hour)):
        raise InputError(f"--per-hour {per_hour}: expected a positive number of products an hour")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"predictions-{start.strftime('%Y%m%dT%H%M%S')}-replay-{os.getpid()}-{len(products)}.jsonl"
    log = PredictionLog(LogSettings(mode=mode, folder=folder), CollectorRegistry())
    logged = no_text = 0
    first = last = ""
    try:
        with atomic_open(target, encoding="utf-8") as handle:
            for item in answered(model, products, start, per_hour):
                if item is None:
                    no_text += 1
                    continue
                record = log.record(item)
                handle.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
                first = first or record["time"]
                last = record["time"]
                logged += 1
    finally:
        log.close()
    return Replayed(target, logged, no_text, first, last)
