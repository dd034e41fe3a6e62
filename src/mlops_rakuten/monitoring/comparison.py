"""Production against a candidate on the frozen evaluation set: metrics, the gate, and the Markdown report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_rakuten.core.atomic import atomic_open
from mlops_rakuten.core.categories import category_label
from mlops_rakuten.core.predict import predict_top_k
from mlops_rakuten.monitoring.gate import CLASS_DROP, F1_MARGIN, MIN_SUPPORT
from mlops_rakuten.stages.evaluate import class_metrics, headline_metrics, plot_confusion


@dataclass
class Scored:
    label: str  # "production rakuten-classifier v1.0.0 (abc1234)" or "candidate retrain-..."
    metrics: dict
    classes: dict
    predicted: np.ndarray


@dataclass
class Comparison:
    production: Scored
    candidate: Scored
    actual: np.ndarray
    f1_margin: float = F1_MARGIN
    class_drop: float = CLASS_DROP
    reasons: list[str] = field(default_factory=list)  # why the candidate is refused; empty: accepted

    @property
    def accepted(self) -> bool:
        return not self.reasons


def score(label: str, pipeline, products: pd.DataFrame) -> Scored:
    codes, _ = predict_top_k(pipeline, products, 1)
    predicted, actual = codes[:, 0], products["prdtypecode"].to_numpy()
    return Scored(label, headline_metrics(actual, predicted, 0), class_metrics(actual, predicted), predicted)


def compare(
    production: Scored,
    candidate: Scored,
    actual: np.ndarray,
    f1_margin: float = F1_MARGIN,
    class_drop: float = CLASS_DROP,
) -> Comparison:
    result = Comparison(production, candidate, actual, f1_margin, class_drop)
    old, new = production.metrics["f1_weighted"], candidate.metrics["f1_weighted"]
    if new < old - f1_margin:
        result.reasons.append(
            f"weighted F1 fell from {old:.4f} to {new:.4f} ({new - old:+.4f}; the margin allows -{f1_margin})"
        )
    for code, before in production.classes.items():
        after = candidate.classes.get(code, {"f1": 0.0})
        if before["support"] >= MIN_SUPPORT and after["f1"] < before["f1"] - class_drop:
            result.reasons.append(
                f"class {category_label(int(code))}: F1 fell from {before['f1']:.3f} to "
                f"{after['f1']:.3f} (more than {class_drop})"
            )
    return result


def _table(result: Comparison) -> list[str]:
    lines = ["| Metric | production | candidate | Change |", "| --- | --- | --- | --- |"]
    for key in ("f1_weighted", "f1_macro", "accuracy"):
        old, new = result.production.metrics[key], result.candidate.metrics[key]
        lines.append(f"| {key} | {old:.4f} | {new:.4f} | {new - old:+.4f} |")
    return lines


def _classes(result: Comparison) -> list[str]:
    lines = ["| Class | support | F1 production | F1 candidate | Change |", "| --- | --- | --- | --- | --- |"]
    codes = sorted({int(c) for c in result.production.classes} | {int(c) for c in result.candidate.classes})
    for code in codes:
        old = result.production.classes.get(str(code), {"f1": 0.0, "support": 0})
        new = result.candidate.classes.get(str(code), {"f1": 0.0, "support": old["support"]})
        change = new["f1"] - old["f1"]
        mark = " **(gate)**" if old["support"] >= MIN_SUPPORT and change < -result.class_drop else ""
        lines.append(
            f"| {category_label(code)} | {old['support']} | {old['f1']:.3f} | {new['f1']:.3f} | {change:+.3f}{mark} |"
        )
    return lines


def write_report(result: Comparison, folder: Path, name: str, frozen: str, outcome: str) -> Path:
    """``folder/name.md`` with both confusion matrices beside it; returns the Markdown's path."""
    folder.mkdir(parents=True, exist_ok=True)
    images = {}
    for side, scored in (("production", result.production), ("candidate", result.candidate)):
        images[side] = f"{name}-{side}.png"
        plot_confusion(result.actual, scored.predicted, folder / images[side])
    verdict = "**accepted**" if result.accepted else "**refused**"
    lines = [
        f"## Retrain report: {name}",
        "",
        f"Candidate {verdict}: {outcome}",
        "",
        f"- production: {result.production.label}",
        f"- candidate: {result.candidate.label}",
        f"- evaluation set: {frozen}",
        f"- gate: weighted F1 at most {result.f1_margin} below production, and no class with "
        f"{MIN_SUPPORT}+ products losing more than {result.class_drop} F1",
        "",
    ]
    if result.reasons:
        lines += ["Why it was refused:", "", *[f"- {reason}" for reason in result.reasons], ""]
    lines += [
        "### Metrics",
        "",
        *_table(result),
        "",
        "### Per-class F1",
        "",
        *_classes(result),
        "",
        "### Confusion matrices",
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
