"""The retrain report (monitoring/comparison.py): every table and line, from hand-built predictions.

tests/test_retrain.py runs `rakuten retrain` for real (minutes); here the decision is slices.py's on
fixed arrays and the confusion matrices are not drawn, so the whole text is checked in a second.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mlops_rakuten.monitoring.comparison as comparison
from mlops_rakuten.monitoring.comparison import compare, predicted_codes, scored, write_report
from mlops_rakuten.monitoring.gate import CLASS_DROP, F1_MARGIN
from mlops_rakuten.monitoring.slices import Slice

from hand_built import A, B, C, D, built


def judged(slices: list[Slice], about: dict[str, str], **limits: float) -> comparison.Comparison:
    frozen = slices[0]
    production = scored("production p", frozen.actual, frozen.production)
    return compare(
        production, scored("candidate c", frozen.actual, frozen.candidate), frozen.actual, slices, about, **limits
    )


@pytest.fixture
def drawn(monkeypatch) -> list[tuple[list[int], list[int], Path]]:
    """The confusion matrices asked for, instead of drawn: (actual, predicted, path)."""
    calls: list[tuple[list[int], list[int], Path]] = []

    def plot_confusion(actual: np.ndarray, predicted: np.ndarray, path: Path) -> None:
        calls.append((actual.tolist(), predicted.tolist(), path))
        path.write_text("png")

    monkeypatch.setattr(comparison, "plot_confusion", plot_confusion)
    return calls


REFUSED = [
    "## Retrain report: r1",
    "",
    "Candidate **refused**: kept production",
    "",
    "- production: production p",
    "- candidate: candidate c",
    "- gate: on every slice, the change in weighted F1 gets a 95 % interval from a paired bootstrap (1000 resamples of the slice's products); refused if a slice's whole interval is below -0.005, or, for a class with 20+ products in a slice, below -0.05. Slices under 30 products are shown, not judged.",
    "- decision: refused: class 2583 Piscine et spa on frozen: F1 1.000 -> 0.824 (-0.176 [-0.288, -0.091]), its lost products mostly now predicted as 2582 Mobilier et accessoires de jardin entirely below -0.05",
    "",
    "Why it was refused:",
    "",
    "- class 2583 Piscine et spa on frozen: F1 1.000 -> 0.824 (-0.176 [-0.288, -0.091]), its lost products mostly now predicted as 2582 Mobilier et accessoires de jardin entirely below -0.05",
    "",
    "### Slices",
    "",
    "| Slice | products | weighted F1 production | weighted F1 candidate | change [95 % interval] | verdict |",
    "| --- | --- | --- | --- | --- | --- |",
    "| frozen | 140 | 0.8571 | 0.9496 | +0.0924 [+0.0278, +0.1596] | better |",
    "| new since production | 5 | 1.0000 | 1.0000 | +0.0000 [+0.0000, +0.0000] | too few products to say |",
    "",
    "- frozen: held out",
    "- new since production: new rows",
    "",
    "### Classes judged (20+ products in a slice)",
    "",
    "| Slice | Class | support | F1 production | F1 candidate | change [95 % interval] | lost products went to |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    "| frozen | 10 Livres d'occasion / anciens | 40 | 0.800 | 1.000 | +0.200 [+0.124, +0.295] |  |",
    "| frozen | 1560 Mobilier et literie | 60 | 0.800 | 1.000 | +0.200 [+0.124, +0.294] |  |",
    "| frozen | 2583 Piscine et spa | 40 | 1.000 | 0.824 | -0.176 [-0.288, -0.091] **(gate)** | 2582 Mobilier et accessoires de jardin |",
    "",
    "### Metrics on the frozen set",
    "",
    "| Metric | production | candidate | Change |",
    "| --- | --- | --- | --- |",
    "| f1_weighted | 0.8571 | 0.9496 | +0.0924 |",
    "| f1_macro | 0.8667 | 0.7059 | -0.1608 |",
    "| accuracy | 0.8571 | 0.9143 | +0.0571 |",
    "",
    "### Per-class F1 on the frozen set",
    "",
    "| Class | support | F1 production | F1 candidate | Change |",
    "| --- | --- | --- | --- | --- |",
    "| 10 Livres d'occasion / anciens | 40 | 0.800 | 1.000 | +0.200 |",
    "| 1560 Mobilier et literie | 60 | 0.800 | 1.000 | +0.200 |",
    "| 2582 Mobilier et accessoires de jardin | 0 | 0.000 | 0.000 | +0.000 |",
    "| 2583 Piscine et spa | 40 | 1.000 | 0.824 | -0.176 **(gate)** |",
    "",
    "### Confusion matrices on the frozen set",
    "",
    "| production | candidate |",
    "| --- | --- |",
    "| ![production](r1-production.png) | ![candidate](r1-candidate.png) |",
]


def test_a_refused_report_says_why_with_every_table(tmp_path, drawn):
    # Class A loses 12 of its 40 products to B while C gains 20: the weighted F1 rises, class A refuses.
    frozen = built("frozen", (A, A, B, 12), (A, A, A, 28), (C, D, C, 20), (C, C, C, 40), (D, D, D, 40))
    result = judged(
        [frozen, built("new since production", (A, A, A, 5))],
        {"frozen": "held out", "new since production": "new rows"},
    )
    assert not result.accepted and (result.f1_margin, result.class_drop) == (F1_MARGIN, CLASS_DROP)
    path = write_report(result, tmp_path / "reports" / "retrain", "r1", "kept production")
    assert path == tmp_path / "reports" / "retrain" / "r1.md"
    assert path.read_text().split("\n") == [*REFUSED, ""]  # ends with a newline
    assert drawn == [
        (frozen.actual.tolist(), frozen.production.tolist(), path.parent / "r1-production.png"),
        (frozen.actual.tolist(), frozen.candidate.tolist(), path.parent / "r1-candidate.png"),
    ]


def test_a_class_refused_on_a_later_slice_is_marked_there_only(tmp_path, drawn):
    frozen = built("frozen", (A, A, A, 40), (C, C, C, 40))
    new = built("new", (A, A, B, 15), (A, A, A, 25), (C, C, C, 40))
    empty = Slice("empty", np.array([], int), np.array([], int), np.array([], int))
    result = judged([frozen, new, empty], {}, f1_margin=0.5, class_drop=0.1)
    lines = write_report(result, tmp_path, "r2", "x").read_text().split("\n")
    assert (
        "refused if a slice's whole interval is below -0.5, or, for a class with 20+ products in a slice, below -0.1."
        in lines[6]
    )
    assert "| empty | 0 | n/a | n/a | n/a [n/a, n/a] | too few products to say |" in lines
    assert (
        "| new | 2583 Piscine et spa | 40 | 1.000 | 0.769 | -0.231 [-0.357, -0.127] **(gate)** | 2582 Mobilier et accessoires de jardin |"
        in lines
    )
    assert "| 2583 Piscine et spa | 40 | 1.000 | 1.000 | +0.000 |" in lines  # no gate mark on the frozen set
    assert lines[lines.index("### Slices") + 7 : lines.index("### Slices") + 10] == [
        "",
        "",
        "### Classes judged (20+ products in a slice)",
    ]  # no slice described


def test_a_worse_slice_is_in_bold_and_an_accepted_report_has_no_refusal(tmp_path, drawn):
    worse = built("frozen", (A, A, B, 60), (A, A, A, 40), (C, C, C, 100))
    text = write_report(judged([worse], {}), tmp_path, "r3", "kept").read_text()
    assert "| **worse** |" in text and text.count("Why it was refused:") == 1
    same = built("frozen", (A, A, A, 10), (C, C, C, 10))
    accepted = judged([same], {"frozen": "held out"})
    text = write_report(accepted, tmp_path, "r4", "promoted").read_text()
    assert accepted.accepted and "Candidate **accepted**: promoted" in text
    assert "refused" not in text.replace("refused if", "") and "### Classes judged" not in text
    assert "| frozen | 20 | 1.0000 | 1.0000 | +0.0000 [+0.0000, +0.0000] | too few products to say |" in text


def test_the_predicted_code_is_the_top_1(monkeypatch):
    asked: list[int] = []

    model, products = object(), object()

    def predict_top_k(pipeline, frame, k: int):
        assert pipeline is model and frame is products
        asked.append(k)
        return np.array([[40, 10], [50, 40]]), np.array([[0.9, 0.1], [0.6, 0.3]])

    monkeypatch.setattr(comparison, "predict_top_k", predict_top_k)
    assert predicted_codes(model, products).tolist() == [40, 50] and asked == [1]


def test_each_limit_goes_to_its_own_rule(tmp_path, drawn):
    # "new" loses 0.115 of weighted F1 (interval up to -0.063) and class A 0.231 (up to -0.127).
    frozen = built("frozen", (A, A, A, 40), (C, C, C, 40))
    new = built("new", (A, A, B, 15), (A, A, A, 25), (C, C, C, 40))
    result = judged([frozen, new], {}, f1_margin=0.05, class_drop=0.3)
    assert [s.verdict for s in result.decision.slices] == ["within noise", "worse"]
    assert not [c for c in result.decision.classes if c.refuses]


def test_a_class_only_production_predicts_shows_zero_for_the_candidate(tmp_path, drawn):
    # Production puts 10 products of A in B; the candidate never predicts B.
    frozen = built("frozen", (A, B, A, 10), (A, A, A, 30), (C, C, C, 40))
    result = judged([frozen], {})
    assert result.production.metrics == {
        "accuracy": 0.875,
        "f1_weighted": 0.928571,
        "f1_macro": 0.619048,
        "n_train": 0,
        "n_test": 80,
    }
    text = write_report(result, tmp_path, "r5", "x").read_text()
    assert "| 2582 Mobilier et accessoires de jardin | 0 | 0.000 | 0.000 | +0.000 |" in text
