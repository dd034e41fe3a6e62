"""Size-aware tests of a drift window against its reference: pure functions on the per-product signals.

Each signal is a two-sample test, so its p-value accounts for the size of the window AND of the
reference (a reference share is itself an estimate: treating it as known inflates false alarms once
the window is larger than the reference).

predicted_class   Pearson chi-square test of homogeneity of the window's and the reference's predicted-class
                  counts, its p-value simulated with both margins fixed; effect: total variation distance
                  between the two class mixes (the share of products that would have to change class).
top1_score        two-sample Kolmogorov-Smirnov test; effect: the KS statistic D (largest gap between the two
text_length       cumulative distributions: it grows like the share of products that moved).
unknown_tokens
unknown_majority  one-sided Fisher exact test of the window's count of products whose word tokens are mostly
low_score         (> half) unknown to the vocabulary (no word token counts as all unknown) / whose top-1 score
no_text           is under 0.5 / whose cleaned text is under 10 characters, against the reference's count;
                  effect: window share - reference share.

The signals of one window are one family: Holm's step-down correction keeps the chance that a window
like the reference marks any signal significant at or under ALPHA. A signal alerts when it is
significant AND its effect reaches its minimum in TESTS: large windows make tiny, harmless shifts significant.
It pages when it alerts with an effect of at least PAGE_EFFECT: a large share of the traffic has changed.
The minimums and the page effects were tuned with `make bench-drift` (docs/monitoring.md): at 3,600 products
an hour they page on a fully broken feed within 30 minutes and alert on a 10 % contaminated one within two
hours, while clean traffic stays under them for days.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.01  # per-window family-wise false-positive rate, over all the signals
LOW_SCORE = 0.5  # a top-1 score under this: the model is more likely wrong than right
NO_TEXT_CHARS = 10  # cleaned title + description under this: (almost) no text (real titles have 13+)
MOSTLY_UNKNOWN = 0.5  # a product with more than this share of its word tokens unknown
CLASS_DRAWS = 4_999  # simulated class mixes per test: p-values down to 0.0002, well under ALPHA / 7
SEED = 0

# signal -> (test, column of the signal frames, minimum effect for an alert). The minimums: a tenth of the
# products changed class, a twentieth moved (distributions), three points more products of a bad kind
# (shares): a tenth of the traffic from a source the model does not know moves them about twice as far.
TESTS: dict[str, tuple[str, str, float]] = {
    "predicted_class": ("chi-square", "prdtypecode", 0.10),
    "top1_score": ("kolmogorov-smirnov", "score", 0.05),
    "text_length": ("kolmogorov-smirnov", "text_chars", 0.05),
    "unknown_tokens": ("kolmogorov-smirnov", "unknown_share", 0.05),
    "unknown_majority": ("fisher-exact", "unknown_share", 0.03),
    "low_score": ("fisher-exact", "score", 0.03),
    "no_text": ("fisher-exact", "text_chars", 0.03),
}
# signal -> smallest effect that pages (with an alert): 15 % of the products changed class, a fifth moved,
# ten points more products of a bad kind.
PAGE_EFFECT: dict[str, float] = {
    "predicted_class": 0.15,
    "top1_score": 0.20,
    "text_length": 0.20,
    "unknown_tokens": 0.20,
    "unknown_majority": 0.10,
    "low_score": 0.10,
    "no_text": 0.10,
}
SIGNALS = tuple(TESTS)
FLAGS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "unknown_majority": lambda share: share > MOSTLY_UNKNOWN,
    "low_score": lambda score: score < LOW_SCORE,
    "no_text": lambda chars: chars < NO_TEXT_CHARS,
}


@dataclass(frozen=True)
class Result:
    signal: str
    test: str
    statistic: float  # chi-square / KS D / window count
    effect: float  # total variation distance / KS D / window share - reference share
    p_value: float
    window: float  # the window's share (Fisher) or mean (KS); NaN for the class mix
    reference: float
    min_effect: float
    threshold: float = math.nan  # Holm's p-value threshold at this signal's rank
    significant: bool = False
    alert: bool = False  # significant and effect >= min_effect
    page: bool = False  # alert and effect >= PAGE_EFFECT[signal]

    @property
    def verdict(self) -> str:
        return "PAGE" if self.page else "ALERT" if self.alert else "significant" if self.significant else "-"

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: NaN becomes None."""
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in asdict(self).items()}


def class_mix(window: np.ndarray, reference: np.ndarray, seed: int = SEED) -> tuple[float, float, float]:
    """(chi-square, p-value, total variation distance) of two samples of class codes.

    The p-value is simulated (CLASS_DRAWS draws of the window's counts from the pooled counts, margins
    fixed): with 27 classes a window of 100 has expected counts under 1, where the chi-square
    distribution's tail is too thin (measured: 0.25 % of clean windows under p = 0.0014, not 0.14 %)."""
    codes, index = np.unique(np.concatenate([window, reference]), return_inverse=True)
    n, total = len(window), len(window) + len(reference)
    counts = np.bincount(index[:n], minlength=len(codes)).astype(float)
    pooled = np.bincount(index, minlength=len(codes)).astype(float)
    shares = counts / n, (pooled - counts) / (total - n)
    distance = float(np.abs(shares[0] - shares[1]).sum() / 2)
    if len(codes) < 2:  # one class on both sides: nothing to compare
        return 0.0, 1.0, distance
    expected = pooled * n / total, pooled * (total - n) / total

    def chi2(w: np.ndarray) -> np.ndarray:
        return ((w - expected[0]) ** 2 / expected[0]).sum(-1) + ((pooled - w - expected[1]) ** 2 / expected[1]).sum(-1)

    observed = float(chi2(counts))
    drawn = np.random.default_rng(seed).multivariate_hypergeometric(pooled.astype(np.int64), n, size=CLASS_DRAWS)
    beaten = int(np.sum(chi2(drawn.astype(float)) >= observed * (1 - 1e-9)))  # float noise: ties count
    return observed, (1 + beaten) / (1 + CLASS_DRAWS), distance


def share_test(window: np.ndarray, reference: np.ndarray) -> tuple[int, float]:
    """(window count, one-sided p-value): are flagged products more common in the window than in the reference?"""
    hits, base = int(window.sum()), int(reference.sum())
    table = [[hits, len(window) - hits], [base, len(reference) - base]]
    return hits, float(stats.fisher_exact(table, alternative="greater").pvalue)


def score_signal(signal: str, window: np.ndarray, reference: np.ndarray) -> Result:
    """One signal's test, before the correction."""
    test, _, min_effect = TESTS[signal]
    if test == "chi-square":
        chi2, p_value, distance = class_mix(window, reference)
        return Result(signal, test, chi2, distance, p_value, math.nan, math.nan, min_effect)
    if test == "kolmogorov-smirnov":
        ks = stats.ks_2samp(window, reference)
        d = float(ks.statistic)
        return Result(signal, test, d, d, float(ks.pvalue), float(window.mean()), float(reference.mean()), min_effect)
    flagged, flagged_reference = FLAGS[signal](window), FLAGS[signal](reference)
    hits, p_value = share_test(flagged, flagged_reference)
    now, then = float(flagged.mean()), float(flagged_reference.mean())
    return Result(signal, test, hits, now - then, p_value, now, then, min_effect)


def holm(results: list[Result], alpha: float = ALPHA) -> list[Result]:
    """Holm's step-down: the i-th smallest p-value (from 0) is compared with alpha / (m - i); once one
    fails, every larger one is not significant. Signals without a p-value (NaN) are not in the family."""
    tested = sorted((r for r in results if not math.isnan(r.p_value)), key=lambda r: r.p_value)
    decided, rejecting = {}, True
    for rank, result in enumerate(tested):
        threshold = alpha / (len(tested) - rank)
        rejecting = rejecting and result.p_value <= threshold
        alert = rejecting and result.effect >= result.min_effect
        page = alert and result.effect >= PAGE_EFFECT.get(result.signal, math.inf)
        decided[result.signal] = replace(result, threshold=threshold, significant=rejecting, alert=alert, page=page)
    return [decided.get(r.signal, r) for r in results]


def assess(window: pd.DataFrame, baseline: Callable[[str], pd.Series]) -> dict[str, Result]:
    """Every signal of ``window`` (a signal frame) against ``baseline(column)``, Holm-corrected."""
    results = []
    for signal, (_, column, _) in TESTS.items():
        now = np.asarray(window[column], dtype=float)
        then = np.asarray(baseline(column), dtype=float)
        results.append(score_signal(signal, now, then))
    return {r.signal: r for r in holm(results)}


TABLE_HEADER = f"{'signal':<17}{'statistic':>10}{'effect':>8}{'min':>6}{'p-value':>10}{'threshold':>10}  verdict"


def table_row(result: Result) -> str:
    """One line of the summary's table, under TABLE_HEADER."""
    return (
        f"{result.signal:<17}{result.statistic:>10.4g}{result.effect:>8.3f}{result.min_effect:>6.2f}"
        f"{result.p_value:>10.2g}{result.threshold:>10.2g}  {result.verdict}"
    )
