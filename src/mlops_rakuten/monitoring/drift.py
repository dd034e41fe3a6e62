"""Drift of a window of logged predictions against the training split of the model that made them.

Seven signals, each a size-aware two-sample test with an effect size (monitoring/significance.py): the
class mix, text lengths and the share of (almost) empty texts are compared with the training split. Scores and unknown tokens (their distributions and the shares of unsure and mostly-unknown
products) are compared with the test split as the pipeline's holdout model scored it: on rows it was fitted on (the training split, or every
row for the refitted served model) a model is surer and knows every word, so a window of new products
would look drifted even when it is not.

Two windows, as the monitor and `rakuten drift` score them (``measure_windows``): **short**, the products of the
hour up to the newest logged one, or the last SHORT_PRODUCTS of the long window when that hour holds fewer (low
traffic), to page fast; and **day**, every product since ``--since`` (default a day), to see slow drift.
``measure_windows`` returns them as a plain list ``[(name, Drift), ...]``, short first; each ``Drift`` holds the
window's per-product signals (``window``), its baselines, and ``results``: signal -> significance.Result
(statistic, effect, p_value, threshold, significant, alert, page), empty when the window has fewer than
MIN_WINDOW products. ``as_dict`` is one window's JSON (``window``, ``first``, ``last``, ``products``,
``left_out``, ``means``, ``tested``, ``signals``: signal -> the Result's fields); `rakuten drift --json` prints
``{"windows": [as_dict(short), as_dict(day)]}``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_rakuten.core.categories import CODES
from mlops_rakuten.core.dataset import read_products
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.predict import load_model, predict_top_k
from mlops_rakuten.monitoring.log_files import Window, row_time, unreadable_note
from mlops_rakuten.monitoring.reference import HOLDOUT_MODEL_PATH, MODEL_PATH, TEST_SPLIT, TRAIN_SPLIT, latest_build
from mlops_rakuten.monitoring.signals import token_counts, unknown_share
from mlops_rakuten.monitoring.significance import ALPHA, SIGNALS, TABLE_HEADER, Result, assess, table_row
from mlops_rakuten.text import product_text

REFERENCE_ROWS = 5_000  # a seeded sample of the training split: enough for stable shares, seconds to score
MIN_WINDOW = 100  # the tests' false-positive rate is measured from 100 products up: fewer are reported, not tested
SEED = 0
HELD_OUT_COLUMNS = ("score", "unknown_share")
SHORT_HOURS = 1.0
# At low traffic the short window reaches back to the last SHORT_PRODUCTS products: at 1,000 a tenth of the
# traffic from an unknown source is significant (the bench's 10 % scenario moves the share of mostly-unknown
# products by 5 points, about six standard errors at 1,000), and clean windows of 1,000 false-alarm under 1 %.
SHORT_PRODUCTS = 1_000


@dataclass
class Drift:
    model_md5: str
    built_at: str  # "workspace" or the commit whose dvc.lock produced the model
    window: pd.DataFrame  # prdtypecode, score, text_chars, unknown_share per logged product
    reference: pd.DataFrame  # prdtypecode and text_chars on the training split (sample)
    held_out: pd.DataFrame  # score and unknown_share on the test split, scored by the holdout model
    results: dict[str, Result] = field(default_factory=dict)  # empty when the window is under MIN_WINDOW
    other_models: int = 0  # window rows made by an earlier model, left out
    unknown_models: int = 0  # window rows of newer models no dvc.lock records, left out
    unreadable_lines: int = 0  # lines of the window's log files that are not a prediction, left out
    name: str = "day"  # "short" or "day"
    first: str = ""  # time of the window's oldest and newest product, as logged
    last: str = ""
    unknown_versions: tuple[str, ...] = ()  # the newer models no dvc.lock records

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


def measure(project: Path, window: Window) -> Drift:
    """Drift of the window's latest model's rows against that model's training split."""
    if not window.rows:
        unreadable = f"; {unreadable_note(window.unreadable_lines)}" if window.unreadable_lines else ""
        raise InputError(f"no prediction logged since {window.since.isoformat(timespec='seconds')}{unreadable}")
    newest_last = list(dict.fromkeys(row["model_version"] for row in reversed(window.rows)))[::-1]
    built, unknown = latest_build(project, newest_last)
    model_md5 = built.model_md5
    rows = [row for row in window.rows if row["model_version"] == model_md5]
    left_out = sum(1 for row in window.rows if row["model_version"] in unknown)
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
        other_models=len(window.rows) - len(rows) - left_out,
        unknown_models=left_out,
        unreadable_lines=window.unreadable_lines,
        unknown_versions=tuple(unknown),
    )
    if rows:
        result.first, result.last = rows[0].get("time", ""), rows[-1].get("time", "")
    if len(rows) >= MIN_WINDOW:
        result.results = assess(current, result.baseline)
    return result


def short_window(day: Drift, window: Window) -> Drift:
    """The short window of a measured long one (same model, same baselines): its products of the hour up to
    the newest logged one, or its last SHORT_PRODUCTS products when that hour holds fewer."""
    rows = window.rows
    mine = [i for i, row in enumerate(rows) if row["model_version"] == day.model_md5]
    hour_start = row_time(rows[-1]).timestamp() - SHORT_HOURS * 3600
    in_hour = sum(1 for i in mine if row_time(rows[i]).timestamp() >= hour_start)
    take = max(in_hour, min(SHORT_PRODUCTS, len(mine)))
    span = rows[mine[-take] :]
    others = [row["model_version"] for row in span if row["model_version"] != day.model_md5]
    unknown = sum(1 for version in others if version in day.unknown_versions)
    short = Drift(
        day.model_md5,
        day.built_at,
        day.window.iloc[len(day.window) - take :].reset_index(drop=True),
        day.reference,
        day.held_out,
        other_models=len(others) - unknown,
        unknown_models=unknown,
        name="short",
        first=rows[mine[-take]]["time"],
        last=rows[mine[-1]]["time"],
    )
    if take >= MIN_WINDOW:
        short.results = assess(short.window, short.baseline)
    return short


def measure_windows(project: Path, window: Window) -> list[tuple[str, Drift]]:
    """The short and the long window of ``window`` (read since the long window's start), short first."""
    day = measure(project, window)
    return [("short", short_window(day, window)), ("day", day)]


def summary(drift: Drift, report: Path | None = None) -> str:
    """One screen: the window, what was left out, each signal's test, and the means behind them."""
    window, reference = drift.window, drift.reference
    span = f", {drift.first[:19].replace('T', ' ')} to {drift.last[:19].replace('T', ' ')}" if drift.first else ""
    lines = [
        f"{drift.name.upper()} WINDOW: {len(window)} products{span}",
        f"  model {drift.model_md5} (built at {drift.built_at}); reference: {len(reference)} products of its "
        f"training split, {len(drift.held_out)} of its test split",
    ]
    if drift.other_models:
        lines.append(f"  {drift.other_models} product(s) answered by an earlier model left out")
    if drift.unknown_models:
        lines.append(f"  {drift.unknown_models} product(s) answered by a model no dvc.lock records left out")
    if drift.unreadable_lines:
        lines.append(f"  {unreadable_note(drift.unreadable_lines)}")
    if drift.results:
        lines.append(f"  tests at a {ALPHA:.0%} false-positive rate per window (Holm over the {len(SIGNALS)} signals):")
        lines += [f"  {TABLE_HEADER}"] + [f"  {table_row(drift.results[signal])}" for signal in SIGNALS]
    else:
        lines.append(f"  fewer than {MIN_WINDOW} products: not tested (sampling noise would dominate)")
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


def as_dict(drift: Drift) -> dict[str, Any]:
    """What `rakuten drift --json` prints: the window, what was left out, and every signal's test (None when
    the window is too small to test: nothing is made up)."""
    untested = dict.fromkeys(("statistic", "effect", "p_value", "threshold", "significant", "alert", "page"))
    return {
        "window": drift.name,
        "first": drift.first or None,
        "last": drift.last or None,
        "model": drift.model_md5,
        "built_at": drift.built_at,
        "products": len(drift.window),
        "reference_products": {"training_split": len(drift.reference), "test_split": len(drift.held_out)},
        "left_out": {
            "earlier_model": drift.other_models,
            "unknown_model": drift.unknown_models,
            "unreadable_lines": drift.unreadable_lines,
        },
        "means": {
            column: dict(zip(("window", "reference"), drift.means(column), strict=True))
            for column in ("score", "text_chars", "unknown_share")
        },
        "tested": bool(drift.results),
        "min_products": MIN_WINDOW,
        "alpha": ALPHA,
        "correction": "holm",
        "signals": {
            signal: drift.results[signal].as_dict() if drift.results else {"signal": signal, **untested}
            for signal in SIGNALS
        },
    }
