"""Production against a candidate: the decision over named slices (slices.py) and the Markdown report.

The report shows every slice (products, both weighted F1s, the change with its 95 % interval, the
verdict), every class judged, and, on the frozen evaluation set, the headline metrics, per-class F1
and both confusion matrices.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_rakuten.core.atomic import atomic_open
from mlops_rakuten.core.categories import category_label
from mlops_rakuten.core.predict import predict_top_k
from mlops_rakuten.core.scores import class_metrics, headline_metrics
from mlops_rakuten.monitoring.gate import CLASS_DROP, CONFIDENCE, F1_MARGIN, MIN_PRODUCTS, MIN_SUPPORT, REPLICATES
from mlops_rakuten.monitoring.slices import WORSE, Decision, Slice, decide
from mlops_rakuten.stages.evaluate import plot_confusion


@dataclass
class Scored:
    label: str  # "production rakuten-classifier v1.0.0 (abc1234)" or "candidate retrain-..."
    metrics: dict
    classes: dict
    predicted: np.ndarray


@dataclass
class Comparison:
    production: Scored  # on the frozen set: the metrics, per-class and confusion tables
    candidate: Scored
    actual: np.ndarray
    decision: Decision  # over every slice, the frozen set first
    about: dict[str, str]  # slice name -> where its products come from, for the report
    f1_margin: float = F1_MARGIN
    class_drop: float = CLASS_DROP

    @property
    def accepted(self) -> bool:
        return self.decision.accepted


def predicted_codes(pipeline, products: pd.DataFrame) -> np.ndarray:
    """The top-1 prdtypecode of each product."""
    codes, _ = predict_top_k(pipeline, products, 1)
    return codes[:, 0]


def scored(label: str, actual: np.ndarray, predicted: np.ndarray) -> Scored:
    return Scored(label, headline_metrics(actual, predicted, 0), class_metrics(actual, predicted), predicted)


def compare(
    production: Scored,
    candidate: Scored,
    actual: np.ndarray,
    slices: list[Slice],
    about: dict[str, str],
    f1_margin: float = F1_MARGIN,
    class_drop: float = CLASS_DROP,
) -> Comparison:
    """``production``/``candidate``: both models on the frozen set; ``slices``: every slice judged."""
    decision = decide(slices, f1_margin, class_drop)
    return Comparison(production, candidate, actual, decision, about, f1_margin, class_drop)


def _num(value: float, digits: int = 4) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"


def _signed(value: float, digits: int = 4) -> str:
    return "n/a" if value != value else f"{value:+.{digits}f}"


def _slices(result: Comparison) -> list[str]:
    lines = [
        "| Slice | products | weighted F1 production | weighted F1 candidate | change [95 % interval] | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in result.decision.slices:
        change = f"{_signed(s.delta)} [{_signed(s.low)}, {_signed(s.high)}]"
        verdict = f"**{s.verdict}**" if s.verdict == WORSE else s.verdict
        lines.append(f"| {s.name} | {s.n} | {_num(s.production_f1)} | {_num(s.candidate_f1)} | {change} | {verdict} |")
    lines.append("")
    lines += [f"- {name}: {text}" for name, text in result.about.items()]
    return lines


def _judged(result: Comparison) -> list[str]:
    lines = [
        "| Slice | Class | support | F1 production | F1 candidate | change [95 % interval] | lost products went to |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in result.decision.classes:
        change = f"{c.delta:+.3f} [{c.low:+.3f}, {c.high:+.3f}]" + (" **(gate)**" if c.refuses else "")
        went = category_label(c.lost_to) if c.lost_to is not None else ""
        lines.append(
            f"| {c.slice} | {c.label} | {c.support} | {c.production_f1:.3f} | {c.candidate_f1:.3f} | {change} | {went} |"
        )
    return lines


def _table(result: Comparison) -> list[str]:
    lines = ["| Metric | production | candidate | Change |", "| --- | --- | --- | --- |"]
    for key in ("f1_weighted", "f1_macro", "accuracy"):
        old, new = result.production.metrics[key], result.candidate.metrics[key]
        lines.append(f"| {key} | {old:.4f} | {new:.4f} | {new - old:+.4f} |")
    return lines


def _classes(result: Comparison) -> list[str]:
    lines = ["| Class | support | F1 production | F1 candidate | Change |", "| --- | --- | --- | --- | --- |"]
    codes = sorted({int(c) for c in result.production.classes} | {int(c) for c in result.candidate.classes})
    gated = {c.code for c in result.decision.classes if c.refuses and c.slice == result.decision.slices[0].name}
    for code in codes:
        old = result.production.classes.get(str(code), {"f1": 0.0, "support": 0})
        new = result.candidate.classes.get(str(code), {"f1": 0.0, "support": old["support"]})
        mark = " **(gate)**" if code in gated else ""
        lines.append(
            f"| {category_label(code)} | {old['support']} | {old['f1']:.3f} | {new['f1']:.3f} | "
            f"{new['f1'] - old['f1']:+.3f}{mark} |"
        )
    return lines


def write_report(result: Comparison, folder: Path, name: str, outcome: str) -> Path:
    """``folder/name.md`` with both confusion matrices beside it; returns the Markdown's path."""
    folder.mkdir(parents=True, exist_ok=True)
    images = {}
    for side, scores in (("production", result.production), ("candidate", result.candidate)):
        images[side] = f"{name}-{side}.png"
        plot_confusion(result.actual, scores.predicted, folder / images[side])
    verdict = "**accepted**" if result.accepted else "**refused**"
    lines = [
        f"## Retrain report: {name}",
        "",
        f"Candidate {verdict}: {outcome}",
        "",
        f"- production: {result.production.label}",
        f"- candidate: {result.candidate.label}",
        f"- gate: on every slice, the change in weighted F1 gets a {CONFIDENCE * 100:.0f} % interval from a paired "
        f"bootstrap ({REPLICATES} resamples of the slice's products); refused if a slice's whole interval is "
        f"below -{result.f1_margin}, or, for a class with {MIN_SUPPORT}+ products in a slice, below "
        f"-{result.class_drop}. Slices under {MIN_PRODUCTS} products are shown, not judged.",
        f"- decision: {result.decision.reason}",
        "",
    ]
    if not result.accepted:
        lines += ["Why it was refused:", "", *[f"- {reason}" for reason in result.decision.refusals], ""]
    lines += ["### Slices", "", *_slices(result), ""]
    if result.decision.classes:
        lines += [f"### Classes judged ({MIN_SUPPORT}+ products in a slice)", "", *_judged(result), ""]
    lines += [
        "### Metrics on the frozen set",
        "",
        *_table(result),
        "",
        "### Per-class F1 on the frozen set",
        "",
        *_classes(result),
        "",
        "### Confusion matrices on the frozen set",
        "",
        "| production | candidate |",
        "| --- | --- |",
        f"| ![production]({images['production']}) | ![candidate]({images['candidate']}) |",
        "",
    ]
    path = folder / f"{name}.md"
    with atomic_open(path) as handle:
        handle.write("\n".join(lines))
    return path
