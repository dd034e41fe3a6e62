"""The example drift report of docs/monitoring.md, made from committed inputs only.

Run in a project whose pipeline ran (``make docs-outputs`` runs it in a fresh clone of HEAD, after
``make run``): a seeded window of demo products the model never trained on (150 like the training
data, 150 pool and garden products) is answered by the project's model and written by the server's
own prediction log, then ``rakuten drift`` reads it, writes ``reports/drift.html`` and prints its
summary. The same code and model give the same report, byte for byte.
"""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from prometheus_client import CollectorRegistry
from sklearn.pipeline import Pipeline

from mlops_rakuten.core.categories import DEFAULT_TOP_K
from mlops_rakuten.core.demo_data import generate
from mlops_rakuten.core.predict import clean_texts, load_model, predict_top_k_cleaned
from mlops_rakuten.monitoring.prediction_log import LogSettings, PredictionLog
from mlops_rakuten.ops.dvcfiles import file_md5

MODEL = Path("models/model.joblib")
REPORT = Path("reports/drift.html")
SEED = 2024  # not the training set's 42: products the model has not seen
LIKE_TRAINING = 150
POOL_AND_GARDEN = 150
SHIFTED_CLASSES = ("2583", "2582")  # Piscine et spa; Mobilier et accessoires de jardin


@dataclass(frozen=True)
class Served:
    """What the prediction log reads of the model that answered (serve/model.py's LoadedModel)."""

    pipeline: Pipeline
    md5: str


def window() -> list[tuple[str, str]]:
    """(designation, description) of the window's products, in a seeded order."""
    x_rows, y_rows = generate(3_000, seed=SEED)
    shifted = [i for i, y in enumerate(y_rows) if y[1] in SHIFTED_CLASSES][:POOL_AND_GARDEN]
    rand = random.Random(SEED)
    others = rand.sample(sorted(set(range(len(x_rows))) - set(shifted)), LIKE_TRAINING)
    chosen = shifted + others
    rand.shuffle(chosen)
    return [(x_rows[i][1], x_rows[i][2]) for i in chosen]


def main() -> None:
    served = Served(load_model(MODEL), file_md5(MODEL))
    products = window()
    texts = clean_texts(served.pipeline, pd.DataFrame(products, columns=["designation", "description"]))
    codes, scores = predict_top_k_cleaned(served.pipeline, texts, DEFAULT_TOP_K)  # as serve/batching.py does
    with tempfile.TemporaryDirectory() as folder:
        log = PredictionLog(LogSettings(mode="text", folder=Path(folder)), CollectorRegistry())
        for (designation, description), top_codes, top_scores in zip(products, codes, scores, strict=True):
            log.append(designation, description, top_codes, top_scores, served)
        log.close()
        rakuten = Path(sys.executable).parent / "rakuten"
        drift = [str(rakuten), "drift", "--since", "1d", "--log-dir", folder, "--out", str(REPORT)]
        print(subprocess.run(drift, check=True, capture_output=True, text=True).stdout, end="")


if __name__ == "__main__":
    main()
