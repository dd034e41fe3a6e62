"""The drift report: one self-contained HTML page, readable at a glance at 1,280 px.

At the top, one row per signal and for each window (the short one that pages, the day one that warns)
its statistic, its effect against the minimum that alerts, its p-value against the Holm threshold,
and its state. Then the summary as the command prints it, and the plots: every histogram draws the
reference and each window on the same bins and the same y scale, the reference as filled bars and the
windows as outlines over them, so a window very unlike the reference never hides the reference.
"""

from __future__ import annotations

import base64
import html
import io
import math
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
from mlops_rakuten.monitoring.significance import ALPHA, SIGNALS, Result  # noqa: E402

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
REFERENCE_COLOR = "#9aa5b1"
WINDOW_COLORS = ("#d9480f", "#1c7ed6", "#2b8a3e")  # first window, second, third
STATE_CLASS = {"PAGE": "page", "ALERT": "alert", "significant": "significant", "-": "ok"}

PAGING_WINDOWS = ("short",)  # the window deployments/prometheus/drift-alerts.yml pages on; the others warn
Windows = Sequence[tuple[str, Drift]]


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _color(i: int) -> str:
    return WINDOW_COLORS[i % len(WINDOW_COLORS)]


def classes_figure(windows: Windows) -> Figure:
    """The training split's class mix and each window's, grouped per class on one axis."""
    figure, axes = plt.subplots(figsize=(12.5, 3.6))
    x = np.arange(len(CODES))
    width = 0.8 / (len(windows) + 1)
    series = [("training split", windows[0][1].reference["prdtypecode"], REFERENCE_COLOR)]
    series += [(name, drift.window["prdtypecode"], _color(i)) for i, (name, drift) in enumerate(windows)]
    for i, (label, codes, color) in enumerate(series):
        axes.bar(x - 0.4 + width * (i + 0.5), class_shares(codes), width, label=label, color=color)
    axes.set_xticks(x, [category_label(code)[:22] for code in CODES], rotation=70, ha="right", fontsize=7)
    axes.set_ylabel("share of products")
    axes.set_title("Predicted class")
    axes.legend()
    return figure


def histogram_figure(windows: Windows, column: str, title: str, bins: Sequence[float], log_x: bool = False) -> Figure:
    """One panel per window, on shared x and y axes: the reference as filled bars, the window as an outline.

    Heights are shares of products per bin (not densities, which log-spaced bins would distort), so
    every panel's bars sum to 1 and the two samples compare whatever their sizes."""
    figure, panels = plt.subplots(
        1, len(windows), figsize=(4.6 * len(windows), 3.2), sharex=True, sharey=True, squeeze=False
    )
    reference = np.asarray(windows[0][1].baseline(column), dtype=float)
    for i, (axes, (name, drift)) in enumerate(zip(panels[0], windows, strict=True)):
        color = _color(i)
        values = np.asarray(drift.window[column], dtype=float)
        for sample, label, style in (
            (reference, "reference", {"histtype": "stepfilled", "color": REFERENCE_COLOR, "alpha": 0.6}),
            (values, f"{name} window", {"histtype": "step", "color": color, "linewidth": 2}),
        ):
            weights = np.full(len(sample), 1 / max(len(sample), 1))
            axes.hist(sample, bins=bins, weights=weights, label=label, **style)
        if log_x:
            axes.set_xscale("log")
        axes.set_title(f"{title}: {name}", fontsize=9)
        axes.legend(fontsize=8)
    panels[0][0].set_ylabel("share of products")
    return figure


def _plots(windows: Windows) -> list[str]:
    longest = max(
        [float(drift.window["text_chars"].max()) for _, drift in windows if len(drift.window)]
        + [float(windows[0][1].baseline("text_chars").max()), 1.0]
    )
    unit = np.linspace(0, 1, 26).tolist()
    figures = [
        classes_figure(windows),
        histogram_figure(windows, "score", "Top-1 score (reference: test split)", unit),
        histogram_figure(
            windows, "text_chars", "Text length (characters)", np.geomspace(1, longest + 1, 30).tolist(), log_x=True
        ),
        histogram_figure(windows, "unknown_share", "Unknown word tokens (reference: test split)", unit),
    ]
    return [_png(figure) for figure in figures]


def _number(value: float, digits: str = ".3f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, digits)


def _state(window: str, result: Result) -> str:
    """The result's verdict as the alert rules act on it: only the short window pages."""
    return "ALERT" if result.verdict == "PAGE" and window not in PAGING_WINDOWS else result.verdict


def _cells(window: str, result: Result | None, products: int) -> str:
    if result is None:
        why = f"fewer than {MIN_WINDOW} products ({products}): not tested"
        return f'<td colspan=3 class=untested>{why}</td><td class="state untested">not tested</td>'
    return (
        f"<td class=num>{_number(result.statistic, '.4g')}</td>"
        f"<td class=num>{_number(result.effect)} <small>/ {result.min_effect:.2f}</small></td>"
        f"<td class=num>{_number(result.p_value, '.2g')} <small>/ {_number(result.threshold, '.2g')}</small></td>"
        f'<td class="state {STATE_CLASS[_state(window, result)]}">{_state(window, result).replace("-", "ok")}</td>'
    )


def _table(windows: Windows) -> str:
    top = "".join(
        f"<th colspan=4>{html.escape(name)} window: {len(drift.window)} products</th>" for name, drift in windows
    )
    each = "<th>statistic</th><th>effect / min</th><th>p-value / threshold</th><th>state</th>" * len(windows)
    rows = "".join(
        f'<tr><th class=signal title="{html.escape(MEANING[signal])}">{signal}</th>'
        + "".join(_cells(name, drift.results.get(signal), len(drift.window)) for name, drift in windows)
        + "</tr>"
        for signal in SIGNALS
    )
    return f"<table class=signals><tr><th rowspan=2>signal</th>{top}</tr><tr>{each}</tr>{rows}</table>"


def _banner(windows: Windows) -> str:
    parts = []
    for name, drift in windows:
        by_state: dict[str, list[str]] = {}
        for signal, result in drift.results.items():
            by_state.setdefault(_state(name, result), []).append(signal)
        if not drift.results:
            state, text = "untested", f"not tested ({len(drift.window)} products, fewer than {MIN_WINDOW})"
        elif by_state.keys() - {"-", "significant"}:  # an alert or a page
            worst = "PAGE" if "PAGE" in by_state else "ALERT"
            state = STATE_CLASS[worst]
            text = "; ".join(
                f"{verdict}: {', '.join(by_state[verdict])}" for verdict in ("PAGE", "ALERT") if verdict in by_state
            )
        elif "significant" in by_state:
            state, text = "significant", f"significant, under the alert minimum: {', '.join(by_state['significant'])}"
        else:
            state, text = "ok", "no drift"
        parts.append(f'<div class="badge {state}"><b>{html.escape(name)} window</b>: {html.escape(text)}</div>')
    return f"<div class=banner>{''.join(parts)}</div>"


# The tests' names in a column as wide as the widest one: a fixed width cut a name off in wider fonts.
STYLE = """body{font-family:sans-serif;margin:1em 1.5em;max-width:1220px}
h1{font-size:1.4em;margin:.3em 0}
pre{background:#f4f4f4;padding:.8em;white-space:pre-wrap;overflow-wrap:anywhere;font-size:12px}
table{border-collapse:collapse;font-size:13px;margin:.6em 0}
td,th{border:1px solid #ccc;padding:.25em .5em;vertical-align:top}
th.signal{text-align:left;cursor:help} .num{text-align:right;white-space:nowrap} small{color:#666}
.state{font-weight:bold;text-align:center} .untested{color:#666;background:#f1f3f5}
.page{background:#fa5252;color:#fff} .alert{background:#ffc9c9} .significant{background:#ffec99} .ok{background:#d3f9d8}
.banner{display:flex;flex-wrap:wrap;gap:.6em} .badge{padding:.4em .8em;border-radius:4px}
.plots{display:flex;flex-wrap:wrap;gap:.4em} img{max-width:100%}
dl{font-size:13px;display:grid;grid-template-columns:max-content 1fr;gap:.15em 1em} dt{font-weight:bold} dd{margin:0}"""


def write_report(windows: Windows | Drift, target: Path, summary: str) -> None:
    """The report of one or more (window name, Drift) pairs, all of the same model, written atomically."""
    if isinstance(windows, Drift):
        windows = [(getattr(windows, "name", "drift"), windows)]
    if not windows:
        raise ValueError("a drift report needs at least one window")
    model = windows[0][1].model_md5
    images = "".join(f'<img src="data:image/png;base64,{png}" alt="drift plot">' for png in _plots(windows))
    meanings = "".join(f"<dt>{signal}</dt><dd>{html.escape(MEANING[signal])}</dd>" for signal in SIGNALS)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Drift report: model {model[:12]}</title>
<style>{STYLE}</style></head><body>
<h1>Drift of served predictions, model {model[:12]}</h1>
{_banner(windows)}
{_table(windows)}
<p><small>A signal is significant when its p-value is at or under its Holm threshold ({ALPHA:.0%} per window over
the {len(SIGNALS)} signals); it alerts when it is also at least its minimum effect.</small></p>
<pre class=summary>{html.escape(summary)}</pre>
<div class=plots>{images}</div>
<h2>The tests</h2><dl>{meanings}</dl></body></html>
"""
    with atomic_open(target) as handle:
        handle.write(page)
