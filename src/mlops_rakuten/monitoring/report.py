"""The drift report: one self-contained HTML page (scores, what they mean, and a plot per signal)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mlops_rakuten.core.atomic import atomic_open  # noqa: E402
from mlops_rakuten.core.categories import CODES, category_label  # noqa: E402
from mlops_rakuten.monitoring.drift import MIN_WINDOW, Drift, class_shares  # noqa: E402
from mlops_rakuten.monitoring.significance import SIGNALS  # noqa: E402

# One sentence per signal, the same as docs/monitoring.md gives.
MEANING = {
    "predicted_class": "Chi-square test (simulated p-value) of the predicted-class counts against the training "
    "split's; effect: total variation distance, the share of products that would have to change class.",
    "top1_score": "Kolmogorov-Smirnov test of top-1 scores against the test split's (holdout model); effect: D, "
    "the largest gap between the two cumulative distributions.",
    "text_length": "Kolmogorov-Smirnov test of cleaned title + description lengths against the training split's.",
    "unknown_tokens": "Kolmogorov-Smirnov test of per-product shares of word tokens the vocabulary lacks, "
    "against the test split's.",
    "unknown_majority": "Fisher exact test: more products with over half their word tokens unknown (or none) "
    "than on the test split? effect: the difference of shares.",
    "low_score": "Fisher exact test: more products with a top-1 score under 0.5 than on the test split?",
    "no_text": "Fisher exact test: more products with under 10 characters of text than on the training split?",
}


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _classes_plot(drift: Drift) -> str:
    figure, axes = plt.subplots(figsize=(11, 3.6))
    x = np.arange(len(CODES))
    axes.bar(x - 0.2, class_shares(drift.reference["prdtypecode"]), 0.4, label="training split", color="#9aa5b1")
    axes.bar(x + 0.2, class_shares(drift.window["prdtypecode"]), 0.4, label="window", color="#d9480f")
    axes.set_xticks(x, [category_label(code)[:22] for code in CODES], rotation=70, ha="right", fontsize=7)
    axes.set_ylabel("share of products")
    axes.set_title("Predicted class")
    axes.legend()
    return _png(figure)


def _histogram(drift: Drift, column: str, title: str, bins: Sequence[float], log_x: bool = False) -> str:
    figure, axes = plt.subplots(figsize=(5.2, 3.2))
    if log_x:
        axes.set_xscale("log")
    for values, label, color in (
        (drift.baseline(column), "reference", "#9aa5b1"),
        (drift.window[column], "window", "#d9480f"),
    ):
        axes.hist(values, bins=bins, density=True, alpha=0.6, label=label, color=color)
    axes.set_title(title)
    axes.set_ylabel("density")
    axes.legend()
    return _png(figure)


def write_report(drift: Drift, target: Path, summary: str) -> None:
    longest = max(float(drift.window["text_chars"].max()), float(drift.baseline("text_chars").max()), 1.0)
    plots = [
        _classes_plot(drift),
        _histogram(
            drift, "score", "Top-1 score (reference: test split, holdout model)", np.linspace(0, 1, 26).tolist()
        ),
        _histogram(
            drift,
            "text_chars",
            "Text length (characters, log scale)",
            np.geomspace(1, longest + 1, 30).tolist(),
            log_x=True,
        ),
        _histogram(
            drift,
            "unknown_share",
            "Share of unknown word tokens (reference: test split)",
            np.linspace(0, 1, 26).tolist(),
        ),
    ]
    rows = "".join(
        f"<tr><td>{signal}</td><td class=num>{drift.results[signal].effect:.3f}</td>"
        f"<td class=num>{drift.results[signal].p_value:.2g}</td><td>{drift.results[signal].verdict}</td>"
        f"<td>{html.escape(MEANING[signal])}</td></tr>"
        if signal in drift.results
        else f"<tr><td>{signal}</td><td class=num>-</td><td class=num>-</td><td>not tested</td>"
        f"<td>fewer than {MIN_WINDOW} products in the window</td></tr>"
        for signal in SIGNALS
    )
    images = "".join(f'<img src="data:image/png;base64,{png}" alt="drift plot">' for png in plots)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report: model {drift.model_md5[:12]}</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:1150px}} pre{{background:#f4f4f4;padding:.8em}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:.3em .6em;vertical-align:top}}
.num{{text-align:right;font-weight:bold}} img{{margin:.4em;max-width:100%}}</style></head><body>
<h1>Drift of served predictions vs the training split</h1>
<pre>{html.escape(summary)}</pre>
<table><tr><th>signal</th><th>effect</th><th>p-value</th><th>verdict</th><th>test</th></tr>{rows}</table>
<div>{images}</div></body></html>
"""
    with atomic_open(target) as handle:
        handle.write(page)
