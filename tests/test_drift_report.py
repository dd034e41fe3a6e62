"""The drift report (monitoring/report.py) on hand-made windows: every signal's statistic, thresholds,
significance and state for each window, and histograms on shared axes that never hide the reference.

tests/test_drift_report_page.py draws the same reports in Chromium at 1,280 px."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_rakuten.core.categories import CODES
from mlops_rakuten.monitoring.drift import MIN_WINDOW, Drift
from mlops_rakuten.monitoring.report import histogram_figure, write_report
from mlops_rakuten.monitoring.significance import SIGNALS, assess

REFERENCE = 3_000


def frame(rows: int, seed: int, shifted: float = 0.0) -> pd.DataFrame:
    """Signal frame of ``rows`` products; a ``shifted`` share of them unsure, unknown-worded and short."""
    rand = np.random.default_rng(seed)
    bad = rand.random(rows) < shifted
    return pd.DataFrame(
        {
            "prdtypecode": np.where(bad, 2583, rand.choice(np.array(CODES), rows)),
            "score": np.where(bad, rand.uniform(0.1, 0.45, rows), rand.beta(8, 2, rows)),
            "text_chars": np.where(bad, rand.integers(1, 9, rows), rand.integers(40, 900, rows)),
            "unknown_share": np.where(bad, 1.0, rand.beta(1, 12, rows)),
        }
    )


def drift(rows: int, seed: int, shifted: float = 0.0) -> Drift:
    reference = frame(REFERENCE, 100)
    result = Drift("f" * 32, "workspace", frame(rows, seed, shifted), reference, frame(REFERENCE, 101))
    if rows >= MIN_WINDOW:
        result.results = assess(result.window, result.baseline)
    return result


def written(tmp_path: Path, windows, summary: str = "model ffff\n  a summary line") -> str:
    target = tmp_path / "drift.html"
    write_report(windows, target, summary)
    return target.read_text(encoding="utf-8")


def signal_row(page: str, signal: str) -> str:
    found = re.search(rf"<tr><th class=signal[^>]*>{signal}</th>(.*?)</tr>", page)
    assert found, f"no row for {signal}"
    return found.group(1)


def test_each_window_shows_every_signal_with_its_thresholds_and_state(tmp_path):
    short, day = drift(300, 1, shifted=0.6), drift(2_000, 2)
    page = written(tmp_path, [("short", short), ("day", day)])
    assert "short window: 300 products" in page and "day window: 2000 products" in page
    for signal in SIGNALS:
        cells = re.findall(r"<td[^>]*>(.*?)</td>", signal_row(page, signal))
        assert len(cells) == 8, cells  # statistic, effect / min, p-value / threshold, state: per window
        for result, (statistic, effect, p_value, state) in zip(
            (short.results[signal], day.results[signal]), (cells[:4], cells[4:]), strict=True
        ):
            assert statistic == f"{result.statistic:.4g}"
            assert effect == f"{result.effect:.3f} <small>/ {result.min_effect:.2f}</small>"
            assert p_value == f"{result.p_value:.2g} <small>/ {result.threshold:.2g}</small>"
            assert state == {"-": "ok"}.get(result.verdict, result.verdict).replace(
                "PAGE", "ALERT" if result is day.results[signal] else "PAGE"
            )
    # The shifted short window alerts on its share signals; the clean day window on none.
    assert short.results["low_score"].alert and short.results["no_text"].alert  # and PAGE where pages exist
    assert not any(r.alert for r in day.results.values())
    assert re.search(r'<div class="badge (alert|page)"><b>short window</b>: (PAGE|ALERT): ', page)
    assert '<div class="badge ok"><b>day window</b>: no drift</div>' in page


def test_a_window_too_small_to_test_says_so_and_shows_no_number(tmp_path):
    small = drift(MIN_WINDOW - 1, 3)
    page = written(tmp_path, [("short", small), ("day", drift(500, 4))])
    for signal in SIGNALS:
        row = signal_row(page, signal)
        assert f"fewer than {MIN_WINDOW} products ({MIN_WINDOW - 1}): not tested" in row
        assert row.count('class="state untested">not tested') == 1
    assert '<div class="badge untested"><b>short window</b>' in page


def test_one_drift_alone_is_one_window(tmp_path):
    page = written(tmp_path, drift(400, 5))
    assert page.count("<th colspan=4>") == 1 and re.search(r"<th colspan=4>\w+ window: 400 products", page)


def test_the_summary_is_escaped_and_wraps_instead_of_running_off_the_page(tmp_path):
    page = written(tmp_path, drift(400, 6), summary="<script>x</script> " + "w" * 400)
    assert "<script>x</script>" not in page and "&lt;script&gt;" in page
    assert re.search(r"pre\{[^}]*white-space:pre-wrap", page)


def test_no_window_is_an_error_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="at least one window"):
        write_report([], tmp_path / "drift.html", "")
    assert not (tmp_path / "drift.html").exists()


@pytest.mark.parametrize("shifted", [0.0, 1.0])
def test_histograms_share_bins_and_y_scale_and_the_reference_stays_whole(shifted):
    # A window of nothing but near-empty products piles up in one bin, far above any reference bar.
    windows = [("short", drift(300, 7, shifted)), ("day", drift(3_000, 8))]
    bins = np.linspace(0, 1, 26)
    figure = histogram_figure(windows, "unknown_share", "unknown", bins.tolist())
    try:
        panels = figure.axes
        assert len(panels) == 2
        assert panels[0].get_ylim() == panels[1].get_ylim() and panels[0].get_xlim() == panels[1].get_xlim()
        expected = np.histogram(windows[0][1].held_out["unknown_share"], bins=bins)[0] / REFERENCE
        for axes, (_, each) in zip(panels, windows, strict=True):
            reference, window = axes.patches  # the filled reference, then the window's outline over it
            assert reference.get_fill() and not window.get_fill()
            heights = np.asarray(reference.get_path().vertices)[1:-1:2, 1][
                : len(expected)
            ]  # the polygon's top edge, bin by bin
            assert np.allclose(heights, expected)
            assert axes.get_ylim()[1] >= max(
                expected.max(), np.histogram(each.window["unknown_share"], bins)[0].max() / len(each.window)
            )
    finally:
        import matplotlib.pyplot as plt

        plt.close(figure)


def test_only_the_short_window_pages_as_the_alert_rules_do(tmp_path):
    broken = drift(500, 9, shifted=1.0)  # every product near-empty, unsure, unknown: page-sized effects
    assert any(r.verdict == "PAGE" for r in broken.results.values())
    page = written(tmp_path, [("short", broken), ("day", broken)])
    row = signal_row(page, "no_text")
    assert re.findall(r'class="state (\w+)">(\w+)<', row) == [("page", "PAGE"), ("alert", "ALERT")]
    assert '<div class="badge page"><b>short window</b>: PAGE: ' in page
    assert '<div class="badge alert"><b>day window</b>: ALERT: ' in page and "day window</b>: PAGE" not in page
