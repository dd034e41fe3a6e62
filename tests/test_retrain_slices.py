"""The retrain decision's arithmetic and wording (monitoring/slices.py), beyond the boundaries that
tests/test_retrain_decision.py checks: the bootstrap's draws and blocks, exact intervals, empty
slices, and every reason a decision gives.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlops_rakuten.monitoring.gate import CLASS_DROP, CONFIDENCE, F1_MARGIN, REPLICATES
from mlops_rakuten.monitoring.slices import NOISE, TOO_FEW, WORSE, Slice, decide, judge, paired_bootstrap

from hand_built import A, B, C, D, E, built

EMPTY = Slice("new since production", np.array([], int), np.array([], int), np.array([], int))


def test_slices_of_unequal_lengths_are_refused():
    with pytest.raises(ValueError) as caught:
        paired_bootstrap(Slice("odd", np.array([A, A, C]), np.array([A, A]), np.array([A, A, C])))
    assert str(caught.value) == "slice odd: 3 labels but 2/3 predictions"


def test_the_interval_is_the_bootstraps_central_95_percent():
    piece = built("frozen", (A, A, B, 20), (A, B, A, 10), (A, A, A, 70), (C, C, C, 100))
    result, classes = judge(piece)
    boot = paired_bootstrap(piece)
    tail = (1 - CONFIDENCE) / 2
    assert (result.low, result.high) == tuple(np.quantile(boot.weighted_diffs, [tail, 1 - tail]))
    (a,) = [c for c in classes if c.code == A]
    column = list(boot.codes).index(A)
    assert (a.low, a.high) == tuple(np.quantile(boot.class_diffs[:, column], [tail, 1 - tail]))
    assert a.delta == a.candidate_f1 - a.production_f1 < 0
    assert boot.weighted_diffs.shape == (REPLICATES,)


def test_every_product_can_be_drawn():
    # Only the first product changes: a bootstrap that never drew it would see no change at all.
    piece = built("frozen", (A, A, B, 1), (A, A, A, 39))
    assert paired_bootstrap(piece).weighted_diffs.min() < 0


def test_replicates_drawn_in_several_blocks_are_as_many_as_asked():
    rng = np.random.default_rng(5)
    actual = rng.choice([A, C, D], 2_500)  # 2,000,000 cells / 2,500 products: blocks of 800 replicates
    boot = paired_bootstrap(Slice("big", actual, actual, np.where(rng.random(2_500) < 0.9, actual, C)))
    assert boot.weighted_diffs.shape == (REPLICATES,) and boot.class_diffs.shape == (REPLICATES, 3)


def test_an_empty_slice_has_no_replicates_and_undefined_scores():
    boot = paired_bootstrap(EMPTY)
    assert boot.weighted_diffs.shape == (0,) and boot.class_diffs.shape == (0, 0)
    result, classes = judge(EMPTY)
    assert result.verdict == TOO_FEW and classes == [] and np.isnan([result.low, result.high]).all()


def test_a_class_only_predicted_has_no_support_and_zero_f1():
    # E is the largest code and no product is of it: its column still exists, with support 0 and F1 0.
    piece = built("frozen", (A, A, E, 10), (A, A, A, 30), (C, C, C, 40))
    for _ in range(20):  # leave freed arrays full of non-zero values where the next tables are allocated
        np.full((3, 3), 7.0)
    boot = paired_bootstrap(piece)
    assert boot.codes.tolist() == [C, A, E] and boot.support.tolist() == [40, 40, 0]
    assert boot.production.tolist() == [1.0, 1.0, 0.0] and boot.candidate[2] == 0.0


def test_the_class_at_exactly_the_allowed_drop_is_not_refused():
    piece = built("frozen", (A, A, B, 12), (A, A, A, 28), (C, D, C, 200), (C, C, C, 300), (D, D, D, 400))
    (a,) = [c for c in decide([piece]).classes if c.code == A]
    exactly = decide([piece], class_drop=-a.high)
    assert [c.refuses for c in exactly.classes if c.code == A] == [False] and exactly.accepted


def test_where_the_lost_products_went_is_the_most_common_place():
    # A loses 5 products to D (the smallest code) and 10 to B: they mostly went to B.
    piece = built("frozen", (A, A, D, 5), (A, A, B, 10), (A, A, A, 25), (D, D, D, 40))
    (a,) = [c for c in decide([piece]).classes if c.code == A]
    assert a.lost_to == B


def test_a_refusal_gives_every_reason_joined():
    worse = built("frozen", (A, A, B, 60), (A, A, A, 40), (C, C, C, 100))
    # In "new", class A loses 15 products to B and wrongly takes 15 of C's.
    both = built("new", (A, A, B, 15), (C, C, A, 15), (A, A, A, 25), (C, C, C, 45))
    decision = decide([worse, both])
    assert decision.accepted is False
    assert decision.refusals[0] == (
        "frozen worse: weighted F1 1.0000 -> 0.7857, -0.2143 [-0.2744, -0.1611] entirely below -0.005"
    )
    (a_new,) = [r for r in decision.refusals if r.startswith("class 2583 Piscine et spa on new")]
    assert a_new.endswith(
        ", its lost products mostly now predicted as 2582 Mobilier et accessoires de jardin"
        ", its wrong new products mostly from 1560 Mobilier et literie entirely below -0.05"
    )
    class_a = [c for c in decision.classes if c.slice == "new" and c.code == A][0]
    assert a_new.startswith(
        f"class 2583 Piscine et spa on new: F1 {class_a.production_f1:.3f} -> {class_a.candidate_f1:.3f} "
        f"({class_a.delta:+.3f} [{class_a.low:+.3f}, {class_a.high:+.3f}])"
    )
    assert decision.reason == "refused: " + "; ".join(decision.refusals) and len(decision.refusals) >= 3


def test_an_acceptance_names_each_slice_and_an_empty_one():
    decision = decide([built("frozen", (A, A, A, 50), (C, C, C, 50)), EMPTY])
    assert decision.accepted is True and decision.refusals == []
    assert decision.reason == (
        "accepted: no slice or class significantly worse "
        "(frozen within noise (+0.0000 [+0.0000, +0.0000], 100 products), new since production empty)"
    )
    tiny = decide([built("batch", (A, A, A, 3))])
    assert tiny.reason == (
        "accepted, but no slice had 30 products to judge: batch too few products to say (+0.0000 [+0.0000, +0.0000], 3 products)"
    )
    assert [r.n for r in tiny.slices] == [3] and tiny.classes == []


def test_the_seed_and_the_margin_reach_every_slice():
    piece = built("frozen", (A, A, B, 20), (A, B, A, 10), (A, A, A, 70), (C, C, C, 100))
    default, other = decide([piece]), decide([piece], seed=1)
    assert (default.slices[0].low, default.slices[0].high) != (other.slices[0].low, other.slices[0].high)
    assert decide([piece], margin=F1_MARGIN, class_drop=CLASS_DROP) == default
    assert decide([piece], margin=-default.slices[0].high - 1e-9).slices[0].verdict == WORSE
    assert default.slices[0].verdict == NOISE


def test_the_json_keeps_numbers_and_nulls_only_the_undefined():
    decision = decide([built("frozen", (A, A, B, 5), (A, A, A, 45), (C, C, C, 50)), EMPTY])
    data = json.loads(json.dumps(decision.as_dict(), allow_nan=False))
    frozen = decision.slices[0]
    assert data["slices"][0]["production_f1"] == frozen.production_f1 and data["slices"][0]["low"] == frozen.low
    assert data["slices"][1]["low"] is None and "refusals" not in data
    assert data["classes"][0]["delta"] == decision.classes[0].delta
