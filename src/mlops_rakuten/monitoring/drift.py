"""Drift of a window of logged predictions against the training split of the model that made them.

Four signals, each a number in [0, 1] where 0 means "looks like the training data". The class mix and
text lengths are compared with the training split. Scores and unknown tokens are compared with the test
split as the pipeline's holdout model scored it: on rows it was fitted on (the training split, or every
row for the refitted served model) a model is surer and knows every word, so a window of new products
would look drifted even when it is not.

predicted_class  Jensen-Shannon distance (base 2) between the window's predicted-class shares and the
                 served model's predicted-class shares on its training split.
top1_score       Kolmogorov-Smirnov statistic between top-1 scores (the model becoming unsure shows here
                 first; the means are given too).
text_length      Kolmogorov-Smirnov statistic between cleaned title + description lengths.
unknown_tokens   Kolmogorov-Smirnov statistic between per-product shares of word tokens missing from the
                 model's vocabulary (the mean shares are given too).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlops_rakuten.core.categories import CODES
from mlops_rakuten.core.dataset import read_products
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.predict import load_model, predict_top_k
from mlops_rakuten.monitoring.log_files import Window, unreadable_note
from mlops_rakuten.monitoring.reference import HOLDOUT_MODEL_PATH, MODEL_PATH, TEST_SPLIT, TRAIN_SPLIT, find_build
from mlops_rakuten.monitoring.signals import token_counts, unknown_share
from mlops_rakuten.text import product_text

SIGNALS = ("predicted_class", "top1_score", "text_length", "unknown_tokens")
REFERENCE_ROWS = 5_000  # a seeded sample of the training split: enough for stable shares, seconds to score
MIN_WINDOW = 100  # fewer products give scores that are mostly sampling noise: reported, not scored
SEED = 0
HELD_OUT_COLUMNS = ("score", "unknown_share")


@dataclass
class Drift:
    model_md5: str
    built_at: str  # "workspace" or the commit whose dvc.lock produced the model
    window: pd.DataFrame  # prdtypecode, score, text_chars, unknown_share per logged product
    reference: pd.DataFrame  # prdtypecode and text_chars on the training split (sample)
    held_out: pd.DataFrame  # score and unknown_share on the test split, scored by the holdout model
    scores: dict[str, float] = field(default_factory=dict)  # empty when the window is under MIN_WINDOW
    other_models: int = 0  # window rows made by another model, left out
    unreadable_lines: int = 0  # lines of the window's log files that are not a prediction, left out

    def baseline(self, column: str) -> pd.Series:
        return (self.held_out if column in HELD_OUT_COLUMNS else self.reference)[column]

    def means(self, column: str) -> tuple[float, float]:
        return float(self.window[column].mean()), float(self.baseline(column).mean())


def signal_frame(pipeline, texts: list[str], codes, scores) -> pd.DataFrame:
    tokens, unknown = token_counts(pipeline, texts)
    return pd.DataFrame(
        {
            "prdtypecode": np.asarray(codes, dtype=np.int64),
            "score": np.asarray(scores, dtype=float),
            "text_chars": [len(t) for t in texts],
            "unknown_share": unknown_share(tokens, unknown),
        }
    )


def reference_frame(pipeline, split: Path) -> pd.DataFrame:
    """The signals of (a seeded sample of) a split as ``pipeline`` predicts it."""
    products = read_products(split)
    if len(products) > REFERENCE_ROWS:
        products = products.sample(REFERENCE_ROWS, random_state=SEED)
    codes, scores = predict_top_k(pipeline, products, 1)
    texts = [product_text(d, s) for d, s in zip(products["designation"], products["description"], strict=True)]
    return signal_frame(pipeline, texts, codes[:, 0], scores[:, 0])


def window_frame(pipeline, rows: list[dict]) -> pd.DataFrame:
    """The window's signals; unknown tokens counted now for text rows, as logged for features-only rows."""
    texts = [f"{row.get('designation', '')} {row.get('description', '')}".strip() for row in rows]
    frame = signal_frame(pipeline, texts, [row["prdtypecode"] for row in rows], [row["score"] for row in rows])
    logged = [i for i, row in enumerate(rows) if "unknown_tokens" in row]
    if logged:
        frame.loc[logged, "unknown_share"] = unknown_share(
            np.array([rows[i]["tokens"] for i in logged]), np.array([rows[i]["unknown_tokens"] for i in logged])
        )
    frame["text_chars"] = [row.get("text_chars", len(t)) for row, t in zip(rows, texts, strict=True)]
    return frame


def class_shares(codes: pd.Series) -> np.ndarray:
    counts = Counter(int(c) for c in codes)
    return np.array([counts.get(code, 0) for code in CODES], dtype=float) / max(len(codes), 1)


def drift_scores(drift: Drift) -> dict[str, float]:
    window = drift.window

    def ks(column: str) -> float:
        return float(stats.ks_2samp(window[column], drift.baseline(column)).statistic)

    return {
        "predicted_class": float(
            jensenshannon(class_shares(window["prdtypecode"]), class_shares(drift.reference["prdtypecode"]), base=2)
        ),
        "top1_score": ks("score"),
        "text_length": ks("text_chars"),
        "unknown_tokens": ks("unknown_share"),
    }


def measure(project: Path, window: Window) -> Drift:
    """Drift of the window's latest model's rows against that model's training split."""
    if not window.rows:
        unreadable = f"; {unreadable_note(window.unreadable_lines)}" if window.unreadable_lines else ""
        raise InputError(f"no prediction logged since {window.since.isoformat(timespec='seconds')}{unreadable}")
    model_md5 = window.rows[-1]["model_version"]
    rows = [row for row in window.rows if row.get("model_version") == model_md5]
    built = find_build(project, model_md5)
    pipeline = load_model(built.file(project, MODEL_PATH))
    current = window_frame(pipeline, rows)
    reference = reference_frame(pipeline, built.file(project, TRAIN_SPLIT))
    held_out = reference_frame(load_model(built.file(project, HOLDOUT_MODEL_PATH)), built.file(project, TEST_SPLIT))
    # The holdout model's vocabulary is the served model's: both use the featurize stage's vectorizer.
    result = Drift(
        model_md5,
        built.commit or "workspace",
        current,
        reference,
        held_out,
        other_models=len(window.rows) - len(rows),
        unreadable_lines=window.unreadable_lines,
    )
    if len(rows) >= MIN_WINDOW:
        result.scores = drift_scores(result)
    return result


def summary(drift: Drift, report: Path | None = None) -> str:
    """One screen: the window, each signal's score, and the means behind them."""
    window, reference = drift.window, drift.reference
    lines = [
        f"model {drift.model_md5} (built at {drift.built_at}); window: {len(window)} products, "
        f"reference: {len(reference)} products of its training split, {len(drift.held_out)} of its test split"
    ]
    if drift.other_models:
        lines.append(f"  {drift.other_models} product(s) answered by an earlier model left out")
    if drift.unreadable_lines:
        lines.append(f"  {unreadable_note(drift.unreadable_lines)}")
    if not drift.scores:
        lines.append(f"  fewer than {MIN_WINDOW} products: no drift score (sampling noise would dominate)")
    for signal in SIGNALS:
        if signal in drift.scores:
            lines.append(f"  {signal:<16} {drift.scores[signal]:.3f}")
    for label, column in (
        ("mean top-1 score", "score"),
        ("mean text length", "text_chars"),
        ("mean unknown-token share", "unknown_share"),
    ):
        now, then = drift.means(column)
        lines.append(f"  {label:<25} window {now:8.3f}   reference {then:8.3f}")
    top = pd.Series(window["prdtypecode"]).value_counts(normalize=True).head(3)
    lines.append("  most predicted in window: " + ", ".join(f"{code} ({share:.0%})" for code, share in top.items()))
    if report:
        lines.append(f"report: {report}")
    return "\n".join(lines)
