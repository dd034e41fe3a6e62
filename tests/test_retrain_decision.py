"""The retrain decision (monitoring/slices.py) at each of its boundaries, on hand-built predictions.

Each slice is built from groups of products: (true class, production's prediction, candidate's
prediction, how many). No model, no pipeline: what is tested is the rule.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from sklearn.metrics import f1_score

from mlops_rakuten.monitoring.gate import CLASS_DROP, F1_MARGIN, MIN_PRODUCTS, MIN_SUPPORT
from mlops_rakuten.monitoring.slices import (
    BETTER,
    NOISE,
    TOO_FEW,
    WORSE,
    Slice,
    decide,
    judge,
    paired_bootstrap,
    verdict,
)

from hand_built import A, B, C, D, built


def background(n: int) -> list[tuple[int, int, int, int]]:
    """``n`` products of classes C and D that both models get right (n a multiple of 4)."""
    return [(C, C, C, n // 2), (D, D, D, n // 2)]


def test_the_scores_are_scikit_learns_and_the_bootstrap_is_fast_and_seeded():
    rng = np.random.default_rng(3)
    codes = np.array([10, 40, 50, 1560, 2060, 2582, 2583, 2585])
    actual = rng.choice(codes, 2_000)
    piece = Slice(
        "random",
        actual,
        np.where(rng.random(2_000) < 0.8, actual, rng.choice(codes, 2_000)),
        np.where(rng.random(2_000) < 0.8, actual, rng.choice(codes, 2_000)),
    )
    start = time.perf_counter()
    result, _ = judge(piece)
    assert time.perf_counter() - start < 3  # 1,000 replicates on 2,000 products: about 0.15 s measured
    assert result.production_f1 == pytest.approx(f1_score(actual, piece.production, average="weighted"), abs=1e-12)
    assert result.candidate_f1 == pytest.approx(f1_score(actual, piece.candidate, average="weighted"), abs=1e-12)
    assert result.low < result.delta < result.high
    again, _ = judge(piece)
    assert (again.low, again.high) == (result.low, result.high)  # same seed, same interval
    other, _ = judge(piece, seed=1)
    assert (other.low, other.high) != (result.low, result.high)
    boot = paired_bootstrap(piece, replicates=7)
    assert boot.weighted_diffs.shape == (7,) and boot.class_diffs.shape == (7, len(codes))


def test_the_verdict_at_its_boundaries():
    n = MIN_PRODUCTS
    assert verdict(n, -0.02, -F1_MARGIN - 1e-9) == WORSE  # just past the margin
    assert verdict(n, -0.02, -F1_MARGIN) == NOISE  # on it: not significantly worse by more
    assert verdict(n, -0.02, -F1_MARGIN / 2) == NOISE  # significantly worse, but by less than the margin
    assert verdict(n, 1e-9, 0.02) == BETTER
    assert verdict(n, 0.0, 0.02) == NOISE
    assert verdict(n - 1, -0.5, -0.4) == TOO_FEW


def test_a_loss_just_outside_the_margin_refuses_and_just_inside_does_not():
    # 60 products the candidate gets wrong and production right, out of 2,000: about -0.03.
    piece = built("frozen", (A, A, B, 60), (A, A, A, 440), *background(1_500))
    result, _ = judge(piece)
    assert result.verdict == WORSE and result.high < -F1_MARGIN
    # The same interval against margins a hair either side of its upper bound.
    outside = decide([piece], margin=-result.high - 1e-6)
    inside = decide([piece], margin=-result.high + 1e-6)
    assert not outside.accepted and outside.slices[0].verdict == WORSE
    assert outside.reason.startswith("refused: frozen worse: weighted F1")
    assert inside.accepted and inside.slices[0].verdict == NOISE, inside.reason


def test_an_interval_that_straddles_the_margin_is_accepted_where_the_fixed_margin_refused():
    # 40 products lost, 16 gained, out of 2,000: the change is -0.0064, past the old fixed margin,
    # but its interval reaches above -0.005: a loss larger than the margin is not shown.
    piece = built("frozen", (A, A, B, 40), (A, B, A, 16), (A, A, A, 444), *background(1_500))
    decision = decide([piece])
    (result,) = decision.slices
    assert result.delta < -F1_MARGIN  # the old rule: refused
    assert result.low < -F1_MARGIN < result.high
    assert decision.accepted and result.verdict == NOISE, decision.reason
    assert decision.reason.startswith("accepted: no slice or class significantly worse (frozen within noise (")


def test_better_on_new_products_within_noise_on_the_frozen_set():
    frozen = built("frozen", (A, A, B, 5), (A, B, A, 4), (A, A, A, 91), *background(200))
    new = built("new since production", (A, B, A, 60), (A, A, A, 40), *background(100))
    decision = decide([frozen, new])
    assert decision.accepted
    assert [r.verdict for r in decision.slices] == [NOISE, BETTER]
    assert "new since production better (+" in decision.reason


def _class_attack(support: int) -> Slice:
    # Class A: production right on all `support` products, the candidate puts 12 of them in B. Meanwhile
    # the candidate fixes 200 products of C that production got wrong: the weighted F1 rises.
    return built(
        "frozen",
        (A, A, B, 12),
        (A, A, A, support - 12),
        (C, D, C, 200),
        (C, C, C, 300),
        (D, D, D, 400),
    )


def test_a_class_with_min_support_that_breaks_refuses_though_the_weighted_f1_rises():
    decision = decide([_class_attack(MIN_SUPPORT)])
    assert decision.slices[0].verdict == BETTER
    assert not decision.accepted
    (broken,) = [c for c in decision.classes if c.refuses]
    assert broken.code == A and broken.support == MIN_SUPPORT and broken.high < -CLASS_DROP
    assert broken.lost_to == B  # where its products went
    assert "class 2583 Piscine et spa on frozen: F1 1.000 -> 0.571" in decision.reason
    assert "lost products mostly now predicted as 2582 Mobilier et accessoires de jardin" in decision.reason


def test_a_class_just_under_min_support_is_not_judged():
    decision = decide([_class_attack(MIN_SUPPORT - 1)])
    assert decision.accepted, decision.reason
    assert A not in [c.code for c in decision.classes]


def test_a_class_drop_just_outside_the_allowed_drop_refuses_and_just_inside_does_not():
    piece = _class_attack(40)
    (a,) = [c for c in decide([piece]).classes if c.code == A]
    assert not decide([piece], class_drop=-a.high - 1e-6).accepted
    assert decide([piece], class_drop=-a.high + 1e-6).accepted


def test_a_relabelled_class_is_named_with_the_class_it_went_to_and_came_from():
    # 30 % of class A products now predicted as B: A loses recall (lost to B), B precision (taken from A).
    piece = built("frozen", (A, A, B, 30), (A, A, A, 70), (B, B, B, 100), *background(300))
    decision = decide([piece])
    by_code = {c.code: c for c in decision.classes}
    assert by_code[A].refuses and by_code[A].lost_to == B
    assert by_code[B].taken_from == A and by_code[B].lost_to is None
    assert "2583 Piscine et spa" in decision.reason and "2582 Mobilier et accessoires de jardin" in decision.reason


def test_a_tiny_slice_is_reported_as_too_few_never_dropped_or_judged():
    tiny = built("batch seller-42", (A, A, B, MIN_PRODUCTS - 1))  # every product lost
    frozen = built("frozen", (A, A, A, 100), *background(100))
    decision = decide([frozen, tiny])
    assert decision.accepted
    assert [(r.name, r.n, r.verdict) for r in decision.slices] == [
        ("frozen", 200, NOISE),
        ("batch seller-42", MIN_PRODUCTS - 1, TOO_FEW),
    ]
    assert "batch seller-42 too few products to say" in decision.reason
    alone = decide([tiny])
    assert alone.accepted and alone.reason.startswith(f"accepted, but no slice had {MIN_PRODUCTS} products")
    judged = decide([built("batch seller-42", (A, A, B, MIN_PRODUCTS))])
    assert not judged.accepted and judged.slices[0].verdict == WORSE


def test_the_decision_as_json():
    empty = Slice("new since production", np.array([], int), np.array([], int), np.array([], int))
    decision = decide([built("frozen", (A, A, A, 50), *background(100)), empty])
    data = json.loads(json.dumps(decision.as_dict(), allow_nan=False))
    assert data["accepted"] is True and data["reason"] == decision.reason
    assert set(data["slices"][0]) == {"name", "n", "production_f1", "candidate_f1", "delta", "low", "high", "verdict"}
    assert data["slices"][1] == {
        "name": "new since production",
        "n": 0,
        "production_f1": None,
        "candidate_f1": None,
        "delta": None,
        "low": None,
        "high": None,
        "verdict": TOO_FEW,
    }
    assert {c["code"] for c in data["classes"]} == {A, C, D}
