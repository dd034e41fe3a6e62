"""The retrain decision with its confidence: production against a candidate on named slices of products.

A slice is a set of labelled products neither model was fitted on (the frozen evaluation set, the
products new since production, later one per source batch), with both models' predictions. For each,
the change in weighted F1 (candidate minus production) gets a 95 % interval from a **paired
bootstrap**: each replicate resamples the slice's products once and scores both models on that same
resample, so the noise both share (which products happen to be hard) cancels out of the difference.

Verdict per slice (thresholds in gate.py): ``worse`` when the whole interval lies below -F1_MARGIN,
``better`` when it lies above 0, else ``within noise``; under MIN_PRODUCTS products ``too few products
to say``, shown and not judged. Per class, in every judged slice: a class with MIN_SUPPORT products
whose F1 change has its whole interval below -CLASS_DROP refuses, named with the class most of its lost
products went to. The candidate is accepted unless a slice or a class refuses.

Pure numpy: one replicate is three ``np.bincount`` calls per model (support, predicted, hits per
class), so 1,000 replicates on 2,000 products take 0.2 to 0.5 s on the shared 2-core development machine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mlops_rakuten.core.categories import category_label
from mlops_rakuten.monitoring.gate import (
    CLASS_DROP,
    CONFIDENCE,
    F1_MARGIN,
    MIN_PRODUCTS,
    MIN_SUPPORT,
    REPLICATES,
    SEED,
)

WORSE, BETTER, NOISE, TOO_FEW = "worse", "better", "within noise", "too few products to say"
# Bound the index table one block of replicates needs (int64: 16 MB), whatever the slice's size.
_BLOCK_CELLS = 2_000_000


@dataclass(frozen=True)
class Slice:
    name: str  # "frozen", "new since production", later one per source batch
    actual: np.ndarray  # prdtypecode of each product
    production: np.ndarray  # production's top-1 code for the same products
    candidate: np.ndarray


@dataclass(frozen=True)
class SliceResult:
    name: str
    n: int
    production_f1: float
    candidate_f1: float
    delta: float
    low: float  # the interval of delta
    high: float
    verdict: str


@dataclass(frozen=True)
class ClassResult:
    slice: str
    code: int
    label: str  # "2583 Piscine et spa"
    support: int
    production_f1: float
    candidate_f1: float
    delta: float
    low: float
    high: float
    refuses: bool
    lost_to: int | None  # the class most of its products production got right and the candidate not went to
    taken_from: int | None  # the true class of most products the candidate newly, wrongly, put in it


@dataclass(frozen=True)
class Decision:
    accepted: bool
    reason: str  # one line
    slices: list[SliceResult]
    classes: list[ClassResult]  # every class judged: MIN_SUPPORT products in a judged slice
    refusals: list[str] = field(default_factory=list)  # one line per slice or class that refused; the reason joins them

    def as_dict(self) -> dict[str, Any]:
        """For JSON: an empty slice's undefined numbers become null (json.dumps would write NaN)."""

        def plain(value: Any) -> Any:
            if isinstance(value, float) and value != value:
                return None
            if isinstance(value, dict):
                return {key: plain(item) for key, item in value.items()}
            if isinstance(value, list):
                return [plain(item) for item in value]
            return value

        data = plain(asdict(self))
        del data["refusals"]
        return data


def _f1_tables(actual: np.ndarray, predicted: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``idx`` (a resample of product positions): support and F1 of each of ``k`` classes.

    F1 = 2 hits / (support + predicted), 0 when a class is neither present nor predicted, as
    scikit-learn's ``f1_score(zero_division=0)``; a row's weighted F1 is sum(F1 * support) / n.
    """
    rows = idx.shape[0]
    offset = (np.arange(rows) * k)[:, None]
    truth, guess = actual[idx], predicted[idx]
    size = rows * k
    support = np.bincount((offset + truth).ravel(), minlength=size).reshape(rows, k)
    guessed = np.bincount((offset + guess).ravel(), minlength=size).reshape(rows, k)
    hits = np.bincount((offset + truth)[truth == guess], minlength=size).reshape(rows, k)
    total = support + guessed
    f1 = np.divide(2.0 * hits, total, out=np.zeros(total.shape), where=total > 0)
    return support, f1


def _weighted(support: np.ndarray, f1: np.ndarray) -> np.ndarray:
    return (support * f1).sum(axis=1) / support.sum(axis=1)


@dataclass(frozen=True)
class Bootstrap:
    codes: np.ndarray  # the class codes, columns of the tables below
    support: np.ndarray  # products per class in the slice itself
    production: np.ndarray  # per-class F1 on the slice itself
    candidate: np.ndarray
    weighted_diffs: np.ndarray  # (replicates,) candidate minus production weighted F1
    class_diffs: np.ndarray  # (replicates, classes)


def paired_bootstrap(piece: Slice, replicates: int = REPLICATES, seed: int = SEED) -> Bootstrap:
    """Both models' F1 on the slice, and their differences on ``replicates`` shared resamples."""
    n = len(piece.actual)
    if not n == len(piece.production) == len(piece.candidate):
        raise ValueError(
            f"slice {piece.name}: {n} labels but {len(piece.production)}/{len(piece.candidate)} predictions"
        )
    codes, coded = np.unique(np.concatenate([piece.actual, piece.production, piece.candidate]), return_inverse=True)
    actual, production, candidate = coded.reshape(3, n)
    k = len(codes)
    whole = np.arange(n)[None, :]
    support, prod_f1 = _f1_tables(actual, production, whole, k)
    _, cand_f1 = _f1_tables(actual, candidate, whole, k)
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_CELLS // max(n, 1))
    weighted, per_class = [], []
    for start in range(0, replicates if n else 0, block):
        idx = rng.integers(0, n, size=(min(block, replicates - start), n))
        sup, before = _f1_tables(actual, production, idx, k)
        _, after = _f1_tables(actual, candidate, idx, k)
        weighted.append(_weighted(sup, after) - _weighted(sup, before))
        per_class.append(after - before)
    return Bootstrap(
        codes,
        support[0],
        prod_f1[0],
        cand_f1[0],
        np.concatenate(weighted) if weighted else np.zeros(0),
        np.concatenate(per_class) if per_class else np.zeros((0, k)),
    )


def _interval(diffs: np.ndarray) -> tuple[float, float]:
    if not len(diffs):
        return float("nan"), float("nan")
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail], axis=0)
    return float(low), float(high)


def _most_common(values: np.ndarray) -> int | None:
    if not len(values):
        return None
    codes, counts = np.unique(values, return_counts=True)
    return int(codes[np.argmax(counts)])


def verdict(n: int, low: float, high: float, margin: float = F1_MARGIN) -> str:
    """A slice's verdict from its size and the interval of its weighted F1 change."""
    if n < MIN_PRODUCTS:
        return TOO_FEW
    if high < -margin:  # significantly worse, by more than the margin
        return WORSE
    if low > 0:
        return BETTER
    return NOISE


def judge(
    piece: Slice, margin: float = F1_MARGIN, class_drop: float = CLASS_DROP, seed: int = SEED
) -> tuple[SliceResult, list[ClassResult]]:
    """One slice's result and, when it is large enough to judge, its classes with MIN_SUPPORT products."""
    boot = paired_bootstrap(piece, seed=seed)
    n = len(piece.actual)
    before = float(_weighted(boot.support[None], boot.production[None])[0]) if n else float("nan")
    after = float(_weighted(boot.support[None], boot.candidate[None])[0]) if n else float("nan")
    low, high = _interval(boot.weighted_diffs)
    result = SliceResult(piece.name, n, before, after, after - before, low, high, verdict(n, low, high, margin))
    if result.verdict == TOO_FEW:
        return result, []
    classes = []
    for column, code in enumerate(boot.codes):
        support = int(boot.support[column])
        if support < MIN_SUPPORT:
            continue
        c_low, c_high = _interval(boot.class_diffs[:, column])
        lost = (piece.actual == code) & (piece.production == code) & (piece.candidate != code)
        taken = (piece.candidate == code) & (piece.production != code) & (piece.actual != code)
        old, new = float(boot.production[column]), float(boot.candidate[column])
        classes.append(
            ClassResult(
                piece.name,
                int(code),
                category_label(int(code)),
                support,
                old,
                new,
                new - old,
                c_low,
                c_high,
                c_high < -class_drop,
                _most_common(piece.candidate[lost]),
                _most_common(piece.actual[taken]),
            )
        )
    return result, classes


def _span(delta: float, low: float, high: float, digits: int = 4) -> str:
    return f"{delta:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def class_reason(result: ClassResult) -> str:
    text = (
        f"class {result.label} on {result.slice}: F1 {result.production_f1:.3f} -> {result.candidate_f1:.3f} "
        f"({_span(result.delta, result.low, result.high, 3)})"
    )
    if result.lost_to is not None:
        text += f", its lost products mostly now predicted as {category_label(result.lost_to)}"
    if result.taken_from is not None:
        text += f", its wrong new products mostly from {category_label(result.taken_from)}"
    return text


def decide(
    pieces: list[Slice], margin: float = F1_MARGIN, class_drop: float = CLASS_DROP, seed: int = SEED
) -> Decision:
    """Accepted unless a slice is significantly worse than -margin, or a class than -class_drop."""
    results, classes = [], []
    for piece in pieces:
        result, judged = judge(piece, margin, class_drop, seed)
        results.append(result)
        classes.extend(judged)
    refusals = [
        f"{r.name} worse: weighted F1 {r.production_f1:.4f} -> {r.candidate_f1:.4f}, "
        f"{_span(r.delta, r.low, r.high)} entirely below -{margin}"
        for r in results
        if r.verdict == WORSE
    ] + [f"{class_reason(c)} entirely below -{class_drop}" for c in classes if c.refuses]
    if refusals:
        return Decision(False, "refused: " + "; ".join(refusals), results, classes, refusals)
    judged_any = any(r.verdict != TOO_FEW for r in results)
    summary = ", ".join(
        f"{r.name} {r.verdict} ({_span(r.delta, r.low, r.high)}, {r.n} products)" if r.n else f"{r.name} empty"
        for r in results
    )
    if not judged_any:
        return Decision(
            True, f"accepted, but no slice had {MIN_PRODUCTS} products to judge: {summary}", results, classes
        )
    return Decision(True, f"accepted: no slice or class significantly worse ({summary})", results, classes)
