"""Drift's tests and signals (monitoring/significance.py, monitoring/signals.py) on hand-made samples.

tests/test_drift_signals.py measures the false-positive rate over hundreds of windows (tens of
seconds); here each test, threshold and the Holm correction is checked against scipy or by hand,
in about a second.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline

from mlops_rakuten.monitoring.signals import token_counts, unknown_share, word_vectorizer
from mlops_rakuten.monitoring.significance import (
    ALPHA,
    CLASS_DRAWS,
    PAGE_EFFECT,
    SIGNALS,
    TABLE_HEADER,
    TESTS,
    Result,
    assess,
    class_mix,
    holm,
    score_signal,
    share_test,
    table_row,
)

SMALLEST_P = 1 / (1 + CLASS_DRAWS)  # no simulated draw as extreme as the window


def tiny_model() -> Pipeline:
    """features -> tfidf -> "word", as a saved model has it, beside a character vectorizer."""
    tfidf = ColumnTransformer(
        [("chars", TfidfVectorizer(analyzer="char"), "text"), ("word", TfidfVectorizer(), "text")]
    )
    features = Pipeline([("tfidf", tfidf)])
    features.fit(pd.DataFrame({"text": ["piscine hors sol", "piscine bleue", "chaise de jardin"]}))
    return Pipeline([("features", features)])


def test_the_word_vectorizer_and_its_unknown_tokens():
    model = tiny_model()
    assert word_vectorizer(model) is model.named_steps["features"].named_steps["tfidf"].named_transformers_["word"]
    tokens, unknown = token_counts(model, ["Piscine hors sol", "piscine inconnue rouge", "", "de x"])
    assert tokens.tolist() == [3, 3, 0, 1] and unknown.tolist() == [0, 2, 0, 0]  # one-letter words: no token
    assert tokens.dtype == np.int64 and unknown.dtype == np.int64


def test_a_product_without_word_tokens_is_all_unknown():
    shares = unknown_share(np.array([4, 0, 2, 1]), np.array([1, 0, 2, 0]))
    assert shares.tolist() == [0.25, 1.0, 1.0, 0.0] and shares.dtype == np.float64


def pearson(window: np.ndarray, reference: np.ndarray) -> float:
    codes = np.union1d(window, reference)
    table = [[np.sum(window == c) for c in codes], [np.sum(reference == c) for c in codes]]
    return float(stats.chi2_contingency(table, correction=False).statistic)


def test_the_class_mix_is_pearsons_chi_square_with_a_simulated_p_value():
    window = np.array([10] * 30 + [40] * 10 + [50] * 10)
    reference = np.array([10] * 60 + [40] * 30 + [50] * 10)
    chi2, p_value, distance = class_mix(window, reference)
    assert chi2 == pytest.approx(pearson(window, reference), rel=1e-12)
    assert distance == pytest.approx(0.1)  # 0.6/0.2/0.2 against 0.6/0.3/0.1: a tenth would have to change
    assert SMALLEST_P < p_value < 1 and (p_value * (1 + CLASS_DRAWS)) % 1 == pytest.approx(0)
    assert class_mix(window, reference) == (chi2, p_value, distance)  # seeded
    assert class_mix(window, reference, seed=1)[1] != p_value
    assert p_value == pytest.approx(stats.chi2_contingency([[30, 10, 10], [60, 30, 10]]).pvalue, abs=0.03)


def test_the_same_mix_is_never_significant_and_a_new_class_always_is():
    same = np.array([10, 10, 40, 50] * 25)
    assert class_mix(same, np.concatenate([same, same])) == (0.0, 1.0, 0.0)  # every draw ties: p = 1
    chi2, p_value, distance = class_mix(np.array([60] * 50 + [10] * 50), np.array([10] * 200))
    assert (
        p_value == SMALLEST_P
        and distance == 0.5
        and chi2 == pytest.approx(pearson(np.array([60] * 50 + [10] * 50), np.array([10] * 200)))
    )


def test_a_class_only_the_reference_has_counts_zero_in_the_window():
    window, reference = np.array([10] * 40 + [40] * 40), np.array([10] * 40 + [40] * 30 + [60] * 10)
    chi2, _, distance = class_mix(window, reference)
    assert chi2 == pytest.approx(pearson(window, reference)) and distance == pytest.approx(0.125)


def test_draws_as_extreme_as_the_window_count_ties_included():
    # Two classes of 50 each pooled: a draw's chi-square grows with |count of 10 - 10|, so the simulated
    # p-value is the share of draws at least as far from 10 as the window's 13, computed exactly here.
    window = np.array([10] * 13 + [40] * 7)
    reference = np.array([10] * 37 + [40] * 43)
    drawn = np.random.default_rng(0).multivariate_hypergeometric(np.array([50, 50]), 20, size=CLASS_DRAWS)
    beaten = int(np.sum(np.abs(drawn[:, 0] - 10) >= 3))
    assert 0 < np.sum(np.abs(drawn[:, 0] - 10) == 3) and class_mix(window, reference)[1] == (1 + beaten) / (
        1 + CLASS_DRAWS
    )


def test_one_class_on_both_sides_is_nothing_to_compare():
    assert class_mix(np.array([10] * 5), np.array([10] * 9)) == (0.0, 1.0, 0.0)


def test_a_share_is_fishers_one_sided_exact_test():
    window = np.array([True] * 12 + [False] * 88)
    reference = np.array([True] * 10 + [False] * 190)
    hits, p_value = share_test(window, reference)
    assert hits == 12
    assert p_value == stats.fisher_exact([[12, 88], [10, 190]], alternative="greater").pvalue
    assert share_test(reference, window)[1] > 0.5  # fewer flagged products than the reference: not a shift


@pytest.mark.parametrize("signal", ["top1_score", "text_length", "unknown_tokens"])
def test_a_distribution_is_kolmogorov_smirnov(signal):
    window, reference = np.linspace(0.2, 0.9, 50), np.linspace(0.1, 0.7, 80)
    result = score_signal(signal, window, reference)
    expected = stats.ks_2samp(window, reference)
    assert (result.test, result.statistic, result.effect) == (
        "kolmogorov-smirnov",
        expected.statistic,
        expected.statistic,
    )
    assert (result.p_value, result.window, result.reference) == (expected.pvalue, window.mean(), reference.mean())
    assert result.min_effect == 0.05 and math.isnan(result.threshold) and not result.significant


@pytest.mark.parametrize(
    "signal, flagged, kept",
    [("unknown_majority", 0.51, 0.5), ("low_score", 0.49, 0.5), ("no_text", 9, 10)],
)
def test_each_share_flags_strictly_past_its_threshold(signal, flagged, kept):
    window = np.array([flagged] * 30 + [kept] * 70, dtype=float)
    reference = np.array([flagged] * 10 + [kept] * 90, dtype=float)
    result = score_signal(signal, window, reference)
    assert (result.test, result.statistic, result.min_effect) == ("fisher-exact", 30, 0.03)
    assert (result.window, result.reference) == (0.3, 0.1) and result.effect == pytest.approx(0.2)
    assert result.p_value == share_test(window == flagged, reference == flagged)[1]


def test_the_class_mix_result_has_no_means():
    result = score_signal("predicted_class", np.array([10, 40] * 50), np.array([10] * 100))
    assert (result.signal, result.test, result.min_effect) == ("predicted_class", "chi-square", 0.10)
    assert (result.statistic, result.p_value, result.effect) == class_mix(np.array([10, 40] * 50), np.array([10] * 100))
    assert math.isnan(result.window) and math.isnan(result.reference)


def made(signal: str, p_value: float, effect: float = 1.0, min_effect: float = 0.1) -> Result:
    return Result(signal, "t", 0.0, effect, p_value, 0.0, 0.0, min_effect)


def test_holm_steps_down_and_stops_at_the_first_failure():
    results = [made("a", 0.004), made("b", 0.001), made("c", 0.005), made("d", 0.02), made("e", math.nan)]
    decided = {r.signal: r for r in holm(results, alpha=0.02)}
    # Four tested: 0.001 <= 0.02/4, 0.004 <= 0.02/3, 0.005 <= 0.02/2 (exactly at it), 0.02 <= 0.02/1.
    assert [decided[s].threshold for s in "bacd"] == [0.005, 0.02 / 3, 0.01, 0.02]
    assert all(decided[s].significant for s in "abcd") and list(decided) == list("abcde")
    assert decided["e"] == results[4]  # no p-value: not in the family, left as it was
    # alpha 0.003, thresholds 0.001, 0.0015, 0.003: the second smallest (0.002) fails, so the third (0.0025),
    # under its own threshold, is not significant either.
    failed = {r.signal: r for r in holm([made("a", 0.0001), made("b", 0.0025), made("c", 0.002)], alpha=0.003)}
    assert [failed[s].significant for s in "acb"] == [True, False, False]


def test_an_alert_needs_significance_and_the_minimum_effect():
    decided = holm([made("a", 0.001, effect=0.1, min_effect=0.1), made("b", 0.001, effect=0.09), made("c", 0.9)])
    assert [(r.significant, r.alert, r.verdict) for r in decided] == [
        (True, True, "ALERT"),
        (True, False, "significant"),
        (False, False, "-"),
    ]
    assert decided[0].threshold == ALPHA / 3 and holm([made("z", ALPHA)])[0].significant


def test_a_page_needs_an_alert_and_the_page_effect():
    """unknown_majority pages from 10 points more products; a significant one under its minimum never pages."""
    decided = holm(
        [
            made("unknown_majority", 0.001, effect=0.10, min_effect=0.03),
            made("low_score", 0.001, effect=0.099, min_effect=0.03),
            made("no_text", 0.5, effect=0.5, min_effect=0.03),
            made("predicted_class", 0.001, effect=0.3, min_effect=0.4),
        ]
    )
    assert [(r.alert, r.page, r.verdict) for r in decided] == [
        (True, True, "PAGE"),
        (True, False, "ALERT"),
        (False, False, "-"),
        (False, False, "significant"),
    ]
    assert PAGE_EFFECT["unknown_majority"] == 0.10 and set(PAGE_EFFECT) == set(SIGNALS)


def test_assess_tests_every_signal_on_its_column_and_baseline():
    rng = np.random.default_rng(0)
    window = pd.DataFrame(
        {
            "prdtypecode": [10, 40] * 50,
            "score": rng.random(100),
            "text_chars": rng.integers(0, 40, 100),
            "unknown_share": rng.random(100),
        }
    )
    reference = window.assign(score=rng.random(100) / 2, text_chars=rng.integers(5, 60, 100), prdtypecode=10)
    asked: list[str] = []

    def baseline(column: str) -> pd.Series:
        asked.append(column)
        return reference[column]

    results = assess(window, baseline)
    assert list(results) == list(SIGNALS) and asked == [column for _, column, _ in TESTS.values()]
    family = holm(
        [
            score_signal(s, np.asarray(window[c], float), np.asarray(reference[c], float))
            for s, (_, c, _) in TESTS.items()
        ]
    )
    assert list(results.values()) == family


def test_a_table_row_lines_up_under_the_header():
    result = Result(
        "low_score", "fisher-exact", 30, 0.2, 0.000123, 0.3, 0.1, 0.05, threshold=0.00143, significant=True, alert=True
    )
    assert TABLE_HEADER == "signal            statistic  effect   min   p-value threshold  verdict"
    assert table_row(result) == "low_score                30   0.200  0.05   0.00012    0.0014  ALERT"
    assert len(table_row(result)) == len(TABLE_HEADER) - len("verdict") + len("ALERT")


def test_the_json_form_has_no_nan():
    result = score_signal("predicted_class", np.array([10, 40] * 50), np.array([10] * 100))
    data = result.as_dict()
    assert data["window"] is None and data["reference"] is None and data["threshold"] is None
    assert data["p_value"] == result.p_value and data["signal"] == "predicted_class" and data["alert"] is False
