"""The drift report in headless Chromium at 1,280 px: nothing cut off, nothing past the right edge, every
plot loaded; with one window, two windows, a window too small to test and a very long summary."""

from __future__ import annotations

import json
import time

import pytest

from test_drift_report import drift, written

from browser import VIEWPORT, Chromium, serve_directory
from conftest import needs

pytestmark = pytest.mark.browser

# Every element's right edge (at most the viewport's width), and the boxes whose content is wider than them.
MEASURE = """JSON.stringify({
  width: document.documentElement.clientWidth,
  page_scroll: document.documentElement.scrollWidth,
  past_edge: [...document.body.querySelectorAll('*')]
    .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
    .map(e => e.tagName + '.' + e.className + ' right ' + Math.round(e.getBoundingClientRect().right)),
  cut: [...document.body.querySelectorAll('*')]
    .filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).display !== 'inline')
    .map(e => e.tagName + '.' + e.className + ' ' + e.scrollWidth + ' > ' + e.clientWidth),
  summary: (s => [s.scrollWidth, s.clientWidth])(document.querySelector('pre.summary')),
  images: [...document.images].map(i => i.complete && i.naturalWidth > 0),
  states: [...document.querySelectorAll('td.state')].length,
})"""


def measured(chromium: Chromium, url: str) -> dict:
    """Load ``url`` in a fresh tab at the 1,280 px viewport and run MEASURE once it has loaded."""
    target = chromium.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = chromium.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    try:
        chromium.send("Emulation.setDeviceMetricsOverride", VIEWPORT, session=session)
        chromium.send("Page.navigate", {"url": url}, session=session)
        deadline = time.monotonic() + 30
        while True:
            state = chromium.send(
                "Runtime.evaluate", {"expression": "document.readyState", "returnByValue": True}, session=session
            )["result"].get("value")
            if state == "complete" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert state == "complete", f"{url} did not load"
        reply = chromium.send("Runtime.evaluate", {"expression": MEASURE, "returnByValue": True}, session=session)
        return json.loads(reply["result"]["value"])
    finally:
        chromium.send("Target.closeTarget", {"targetId": target})


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reports")
    long_summary = "\n".join(
        ["model " + "f" * 32 + " (built at workspace); window: 3000 products, reference: 3000 products " * 3]
        + [f"  signal_{i:<12} {'0.123456':>14} {'9.9e-05':>12} " * 6 for i in range(12)]
    )
    cases = {
        "one": [("day", drift(800, 11))],
        "two": [("short", drift(300, 12, shifted=0.8)), ("day", drift(3_000, 13, shifted=0.1))],
        "untested": [("short", drift(40, 14)), ("day", drift(1_500, 15))],
        "long_summary": [("short", drift(200, 16)), ("day", drift(2_000, 17))],
    }
    for name, windows in cases.items():
        (folder / name).mkdir()
        written(folder / name, windows, long_summary if name == "long_summary" else "model ffff\n  summary")
    executable = needs("chromium")
    with serve_directory(folder) as base, Chromium(executable, tmp_path_factory.mktemp("chromium")) as chromium:
        yield chromium, base, cases


@pytest.mark.parametrize("case", ["one", "two", "untested", "long_summary"])
def test_the_report_fits_1280_pixels_with_nothing_cut_off(reports, case):
    chromium, base, cases = reports
    seen = measured(chromium, f"{base}{case}/drift.html")
    assert seen["width"] == VIEWPORT["width"]
    assert seen["page_scroll"] <= seen["width"], seen
    assert not seen["past_edge"], seen["past_edge"]
    assert not seen["cut"], seen["cut"]
    assert seen["summary"][0] <= seen["summary"][1], f"summary block cut off: {seen['summary']}"
    assert seen["images"] and all(seen["images"]), seen["images"]
    assert seen["states"] == 7 * len(cases[case])  # a state per signal and window
