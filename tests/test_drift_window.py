"""Drift's window and report (monitoring/drift.py) on a tiny fitted vectorizer and scripted splits.

tests/test_drift_signals.py runs `rakuten drift` on a trained demo project (tens of seconds); here each
step of a measurement (frames, the build's models and splits, what is left out, the summary and the
JSON) is checked by hand-computed numbers in about a second.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline

import mlops_rakuten.monitoring.drift as drift
from mlops_rakuten.core.categories import CODES
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.monitoring.drift import (
    MIN_WINDOW,
    Drift,
    as_dict,
    class_shares,
    measure,
    reference_frame,
    signal_frame,
    summary,
    window_frame,
)
from mlops_rakuten.monitoring.log_files import Window
from mlops_rakuten.monitoring.significance import SIGNALS, assess

SINCE = datetime(2024, 5, 6, 7, 8, 9, 500, tzinfo=timezone.utc)


def tiny_model() -> Pipeline:
    """features -> tfidf -> "word", as a saved model has it."""
    tfidf = ColumnTransformer([("word", TfidfVectorizer(), "text")])
    features = Pipeline([("tfidf", tfidf)])
    features.fit(pd.DataFrame({"text": ["piscine hors sol", "piscine bleue", "chaise de jardin"]}))
    return Pipeline([("features", features)])


MODEL, HOLDOUT = tiny_model(), tiny_model()


def test_a_signal_frame_has_the_four_columns():
    frame = signal_frame(MODEL, ["piscine inconnue", "chaise"], [2583, 1560], [0.75, 0.5])
    assert frame.to_dict("list") == {
        "prdtypecode": [2583, 1560],
        "score": [0.75, 0.5],
        "text_chars": [16, 6],
        "unknown_share": [0.5, 0.0],
    }
    assert frame["prdtypecode"].dtype == np.int64 and frame["score"].dtype == np.float64
    cast = signal_frame(MODEL, ["chaise"], np.array([1560.0]), [1])  # codes as floats, a score as an int
    assert cast["prdtypecode"].dtype == np.int64 and cast["score"].dtype == np.float64


def fake_predictions(monkeypatch, products: dict[str, pd.DataFrame]) -> list[tuple[object, int]]:
    """read_products gives ``products[path]``; each product's code is its title's length, its score 1/length."""
    calls: list[tuple[object, int]] = []

    def predict_top_k(pipeline, frame: pd.DataFrame, k: int):
        calls.append((pipeline, k))
        lengths = np.array([[len(t)] for t in frame["designation"]])
        return lengths, 1.0 / lengths

    monkeypatch.setattr(drift, "read_products", lambda path: products[str(path)])
    monkeypatch.setattr(drift, "predict_top_k", predict_top_k)
    return calls


def test_the_reference_is_a_seeded_sample_of_the_split(monkeypatch):
    titles = [f"piscine {'x' * i}" for i in range(6)]
    products = pd.DataFrame({"designation": titles, "description": ["<b>bleue</b>"] * 6})
    calls = fake_predictions(monkeypatch, {"split.csv": products})
    monkeypatch.setattr(drift, "REFERENCE_ROWS", 6)
    whole = reference_frame(MODEL, Path("split.csv"))
    assert whole["prdtypecode"].tolist() == [len(t) for t in titles]  # all of them, in order
    assert whole["text_chars"].tolist() == [len(f"{t.strip()} bleue") for t in titles]  # cleaned text
    assert whole["unknown_share"].tolist() == [0.0, 0.0] + [1 / 3] * 4  # "xx", "xxx"...: unknown words
    assert calls == [(MODEL, 1)]
    monkeypatch.setattr(drift, "REFERENCE_ROWS", 4)
    sample = reference_frame(MODEL, Path("split.csv"))
    expected = products.sample(4, random_state=0)["designation"]
    assert sample["prdtypecode"].tolist() == [len(t) for t in expected]
    assert sample["score"].tolist() == [1 / len(t) for t in expected]


def test_a_window_counts_unknown_tokens_now_or_takes_the_logged_ones():
    rows: list[dict] = [
        {"prdtypecode": 10, "score": 0.5, "designation": "piscine", "description": "rouge"},
        {"prdtypecode": 40, "score": 0.25, "designation": "chaise"},
        {"prdtypecode": 50, "score": 0.75, "tokens": 4, "unknown_tokens": 3, "text_chars": 99},
        {"prdtypecode": 60, "score": 1.0, "description": "jardin bleu"},
        {"prdtypecode": 70, "score": 1.0},
    ]
    frame = window_frame(MODEL, rows)
    assert frame["prdtypecode"].tolist() == [10, 40, 50, 60, 70]
    assert frame["score"].tolist() == [0.5, 0.25, 0.75, 1.0, 1.0]
    assert frame["text_chars"].tolist() == [len("piscine rouge"), len("chaise"), 99, len("jardin bleu"), 0]
    assert frame["unknown_share"].tolist() == [0.5, 0.0, 0.75, 0.5, 1.0]


def test_class_shares_follow_the_category_codes():
    shares = class_shares(pd.Series([CODES[1], CODES[1], CODES[0], CODES[-1]]))
    assert len(shares) == len(CODES)
    assert (shares[0], shares[1], shares[-1]) == (0.25, 0.5, 0.25) and shares.sum() == 1.0
    assert class_shares(pd.Series([], dtype=int)).tolist() == [0.0] * len(CODES)
    assert class_shares(pd.Series([CODES[3]]))[3] == 1.0


def frames(n: int = 3) -> Drift:
    window = pd.DataFrame(
        {
            "prdtypecode": [CODES[0]] * (n - 1) + [CODES[1]],
            "score": np.linspace(0.5, 0.9, n),
            "text_chars": np.arange(n) * 10,
            "unknown_share": np.linspace(0.0, 0.3, n),
        }
    )
    reference = pd.DataFrame({"prdtypecode": [CODES[0], CODES[1]] * n, "text_chars": np.arange(2 * n) * 3})
    held_out = pd.DataFrame({"score": np.linspace(0.3, 0.7, 2 * n), "unknown_share": np.linspace(0.1, 0.2, 2 * n)})
    return Drift("abc", "workspace", window, reference, held_out)


def test_scores_and_unknown_shares_are_compared_with_the_test_split():
    result = frames()
    assert result.baseline("score").equals(result.held_out["score"])
    assert result.baseline("unknown_share").equals(result.held_out["unknown_share"])
    assert result.baseline("text_chars").equals(result.reference["text_chars"])
    assert result.baseline("prdtypecode").equals(result.reference["prdtypecode"])
    assert result.means("score") == pytest.approx((0.7, 0.5)) and result.means("text_chars") == (10.0, 7.5)


def logged(n: int, model: str) -> list[dict]:
    return [{"model_version": model, "prdtypecode": 10, "score": 0.5, "designation": f"piscine {i}"} for i in range(n)]


def served(monkeypatch, commit: str | None, unknown: list[str]) -> dict:
    """measure's inputs: latest_build answers a build at ``commit`` (``unknown``: newer unrecorded models)."""
    seen: dict = {"calls": fake_predictions(monkeypatch, SPLITS)}
    built = SimpleNamespace(model_md5="new", commit=commit, file=lambda project, path: project / path)

    def latest_build(project: Path, versions: list[str]):
        seen["asked"] = (project, versions)
        return built, unknown

    models = {"p/models/model.joblib": MODEL, "p/models/holdout_model.joblib": HOLDOUT}
    monkeypatch.setattr(drift, "latest_build", latest_build)
    monkeypatch.setattr(drift, "load_model", lambda path: models[str(path)])
    return seen


SPLITS = {
    "p/data/split/train.csv": pd.DataFrame({"designation": ["chaise"] * 3, "description": [""] * 3}),
    "p/data/split/test.csv": pd.DataFrame({"designation": ["piscine bleue"] * 2, "description": [""] * 2}),
}


def test_measure_tests_the_newest_recorded_models_rows_against_its_build(monkeypatch):
    seen = served(monkeypatch, "c0ffee", ["newer"])
    rows = logged(5, "old") + logged(MIN_WINDOW, "new") + logged(3, "newer") + logged(2, "old")
    result = measure(Path("p"), Window(rows, SINCE, 1, 7))
    assert seen["asked"] == (Path("p"), ["new", "newer", "old"])  # newest last, by each model's last row
    assert (result.model_md5, result.built_at) == ("new", "c0ffee")
    assert (result.other_models, result.unknown_models, result.unreadable_lines) == (7, 3, 7)
    assert len(result.window) == MIN_WINDOW and list(result.results) == list(SIGNALS)
    assert result.results == assess(result.window, result.baseline)
    assert result.reference["prdtypecode"].tolist() == [6] * 3  # the training split, by the served model
    assert result.held_out["score"].tolist() == [1 / 13] * 2  # the test split, by the holdout model
    assert [model for model, _ in seen["calls"]] == [MODEL, HOLDOUT]


def test_a_window_under_the_minimum_is_not_tested(monkeypatch):
    served(monkeypatch, None, [])
    result = measure(Path("p"), Window(logged(MIN_WINDOW - 1, "new"), SINCE, 1, 0))
    assert result.results == {} and result.built_at == "workspace" and result.other_models == 0


def test_an_empty_window_is_refused_naming_its_unreadable_lines():
    with pytest.raises(InputError) as caught:
        measure(Path("p"), Window([], SINCE, 0, 0))
    assert str(caught.value) == "no prediction logged since 2024-05-06T07:08:09+00:00"
    with pytest.raises(InputError) as caught:
        measure(Path("p"), Window([], SINCE, 1, 2))
    assert str(caught.value) == (
        "no prediction logged since 2024-05-06T07:08:09+00:00; "
        "2 unreadable line(s) of the log left out (cut by a full disk or a crash mid-write)"
    )


def test_the_summary_names_every_number():
    result = frames()
    result.other_models, result.unknown_models, result.unreadable_lines = 2, 4, 5
    result.results = assess(result.window, result.baseline)
    lines = summary(result, Path("reports/drift.md")).splitlines()
    assert lines[:6] == [
        "DAY WINDOW: 3 products",
        "  model abc (built at workspace); reference: 6 products of its training split, 6 of its test split",
        "  2 product(s) answered by an earlier model left out",
        "  4 product(s) answered by a model no dvc.lock records left out",
        "  5 unreadable line(s) of the log left out (cut by a full disk or a crash mid-write)",
        "  tests at a 1% false-positive rate per window (Holm over the 7 signals):",
    ]
    assert lines[6] == "  signal            statistic  effect   min   p-value threshold  verdict"
    assert lines[7] == "  predicted_class       0.225   0.167  0.10         1    0.0033  -"
    assert [line.split()[0] for line in lines[7:14]] == list(SIGNALS)
    assert lines[14:] == [
        "  mean top-1 score          window    0.700   reference    0.500",
        "  mean text length          window   10.000   reference    7.500",
        "  mean unknown-token share  window    0.150   reference    0.150",
        f"  most predicted in window: {CODES[0]} (67%), {CODES[1]} (33%)",
        "report: reports/drift.md",
    ]
    four = frames(8)
    four.window["prdtypecode"] = [CODES[0]] * 4 + [CODES[1]] * 2 + [CODES[2], CODES[3]]
    assert (
        summary(four).splitlines()[-1]
        == f"  most predicted in window: {CODES[0]} (50%), {CODES[1]} (25%), {CODES[2]} (12%)"
    )
    untested = summary(frames()).splitlines()
    assert untested[2] == f"  fewer than {MIN_WINDOW} products: not tested (sampling noise would dominate)"
    assert len(untested) == 7 and not untested[-1].startswith("report")


def test_the_json_says_what_was_tested_and_nothing_made_up():
    result = frames()
    result.other_models, result.unknown_models, result.unreadable_lines = 2, 4, 5
    untested = json.loads(json.dumps(as_dict(result), allow_nan=False))
    assert {
        k: untested[k] for k in ("model", "built_at", "products", "tested", "min_products", "alpha", "correction")
    } == {
        "model": "abc",
        "built_at": "workspace",
        "products": 3,
        "tested": False,
        "min_products": MIN_WINDOW,
        "alpha": 0.01,
        "correction": "holm",
    }
    assert (untested["window"], untested["first"], untested["last"]) == ("day", None, None)
    assert untested["reference_products"] == {"training_split": 6, "test_split": 6}
    assert untested["left_out"] == {"earlier_model": 2, "unknown_model": 4, "unreadable_lines": 5}
    assert untested["means"]["text_chars"] == {"window": 10.0, "reference": 7.5}
    assert set(untested["means"]) == {"score", "text_chars", "unknown_share"}
    assert untested["signals"]["no_text"] == {
        "signal": "no_text",
        "statistic": None,
        "effect": None,
        "p_value": None,
        "threshold": None,
        "significant": None,
        "alert": None,
        "page": None,
    }
    result.results = assess(result.window, result.baseline)
    tested = as_dict(result)
    assert tested["tested"] is True and list(tested["signals"]) == list(SIGNALS)
    assert tested["signals"]["top1_score"] == result.results["top1_score"].as_dict()
