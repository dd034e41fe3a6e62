"""The example drift report of docs/monitoring.md, made from committed inputs only.

Run in a project whose pipeline ran (``make docs-outputs`` runs it in a fresh clone of HEAD, after
``make run``): a seeded day of demo products the model never trained on is answered by the project's
model and written by the server's own prediction log, then re-timed as if answered over one fixed day:
DAY_PRODUCTS like the training data over its first 23 hours, then in its last hour LAST_HOUR_LIKE more
and LAST_HOUR_SHIFTED pool and garden products (a new supplier's feed). ``rakuten drift`` reads the
day, writes ``reports/drift.html`` and prints its summary: the short window sees the feed as it is,
the day window sees it diluted. The times are fixed, so the same code and model give the same report,
byte for byte.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
from prometheus_client import CollectorRegistry
from sklearn.pipeline import Pipeline

from mlops_rakuten.core.categories import DEFAULT_TOP_K
from mlops_rakuten.core.demo_data import generate
from mlops_rakuten.core.predict import clean_texts, load_model, predict_top_k_cleaned
from mlops_rakuten.monitoring.prediction_log import FILE_GLOB, LogSettings, PredictionLog
from mlops_rakuten.ops.dvcfiles import file_md5

MODEL = Path("models/model.joblib")
REPORT = Path("reports/drift.html")
SEED = 2024  # not the training set's 42: products the model has not seen
DAY_PRODUCTS = 2_000
LAST_HOUR_LIKE = 500
LAST_HOUR_SHIFTED = 500
SHIFTED_CLASSES = ("2583", "2582")  # Piscine et spa; Mobilier et accessoires de jardin
DAY_START = datetime(2026, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Served:
    """What the prediction log reads of the model that answered (serve/model.py's LoadedModel)."""

    pipeline: Pipeline
    md5: str


def day() -> list[tuple[datetime, str, str]]:
    """(answered at, designation, description) of the day's products, oldest first, in a seeded order."""
    x_rows, y_rows = generate(12_000, seed=SEED)
    shifted = [i for i, y in enumerate(y_rows) if y[1] in SHIFTED_CLASSES][:LAST_HOUR_SHIFTED]
    rand = random.Random(SEED)
    like = rand.sample(sorted(set(range(len(x_rows))) - set(shifted)), DAY_PRODUCTS + LAST_HOUR_LIKE)
    last_hour = shifted + like[DAY_PRODUCTS:]
    rand.shuffle(last_hour)
    early = [DAY_START + timedelta(hours=23) * i / DAY_PRODUCTS for i in range(DAY_PRODUCTS)]
    late = [DAY_START + timedelta(hours=23) + timedelta(hours=1) * i / len(last_hour) for i in range(len(last_hour))]
    chosen = like[:DAY_PRODUCTS] + last_hour
    return [(when, x_rows[i][1], x_rows[i][2]) for when, i in zip(early + late, chosen, strict=True)]


def retime(folder: Path, times: list[datetime]) -> None:
    """The log's rows (written in answer order) given the day's times, in the log's own time format."""
    (path,) = sorted(folder.glob(FILE_GLOB))
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row, when in zip(rows, times, strict=True):
        row["time"] = when.isoformat(timespec="milliseconds")
    path.write_text("".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows), "utf-8")


def main() -> None:
    served = Served(load_model(MODEL), file_md5(MODEL))
    products = day()
    frame = pd.DataFrame([p[1:] for p in products], columns=["designation", "description"])
    texts = clean_texts(served.pipeline, frame)
    codes, scores = predict_top_k_cleaned(served.pipeline, texts, DEFAULT_TOP_K)  # as serve/batching.py does
    with tempfile.TemporaryDirectory() as folder:
        # A day's traffic logged in seconds: no user's budget a minute applies (every product is kept).
        unbounded = LogSettings(mode="text", folder=Path(folder), user_bytes_per_minute=float("inf"))
        log = PredictionLog(unbounded, CollectorRegistry())
        for (_, designation, description), top_codes, top_scores in zip(products, codes, scores, strict=True):
            log.append(designation, description, top_codes, top_scores, served)
        log.flush(timeout=120)
        log.close()
        retime(Path(folder), [p[0] for p in products])
        rakuten = Path(sys.executable).parent / "rakuten"
        since = DAY_START.isoformat()
        drift = [str(rakuten), "drift", "--since", since, "--log-dir", folder, "--out", str(REPORT)]
        print(subprocess.run(drift, check=True, capture_output=True, text=True).stdout, end="")


if __name__ == "__main__":
    main()
