"""The monitor service: drift on a schedule, its tests as Prometheus gauges, and an optional scheduled retrain.

Every run scores two windows (monitoring/drift.py): ``window="short"`` (the last hour, at least the last 1,000
products) and ``window="day"``; each signal gauge carries ``window`` and ``signal`` labels (2 x 7 series).

It reads the prediction log the API writes (a shared folder or volume) and the project the model was
built from; it never talks to the API, so it can run in its own, heavier, container.
"""

from __future__ import annotations

import logging
import math
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from mlops_rakuten.core.errors import InputError
from mlops_rakuten.monitoring.drift import measure_windows, summary
from mlops_rakuten.monitoring.log_files import read_window, since_time
from mlops_rakuten.monitoring.report import write_report
from mlops_rakuten.monitoring.significance import PAGE_EFFECT, SIGNALS, TESTS

# gauge -> (Result field, help); one series per signal, NaN while the window is too small to test
SIGNAL_GAUGES = {
    "statistic": ("statistic", "Test statistic of the signal: chi-square, Kolmogorov-Smirnov D or window count"),
    "effect": ("effect", "Effect size: class-mix total variation distance, KS D, or window share - reference share"),
    "p_value": ("p_value", "p-value of the signal's two-sample test (before the correction)"),
    "p_threshold": ("threshold", "Holm-corrected p-value threshold at the signal's rank (1 % per window)"),
    "significant": ("significant", "1 if the test is significant after the correction, else 0"),
    "alert": ("alert", "1 if significant and the effect reaches rakuten_drift_min_effect, else 0"),
}
WINDOWS = ("short", "day")

log = logging.getLogger("monitor")
_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds(value: str) -> float:
    """``90s``, ``15m``, ``6h``, ``7d``, ``1w`` in seconds."""
    match = _SPAN.match(value.strip())
    if not match or float(match.group(1)) <= 0:
        raise InputError(f"{value!r}: expected a duration such as 90s, 15m, 6h, 7d or 1w")
    return float(match.group(1)) * _SECONDS[match.group(2)]


class Monitor:
    def __init__(self, project: Path, log_dir: Path, since: str, reports: Path, retrain_seconds: float | None):
        self.project, self.log_dir, self.since, self.reports = project, log_dir, since, reports
        self.retrain_seconds = retrain_seconds
        self.registry = CollectorRegistry()
        gauge = lambda name, text, labels=(): Gauge(name, text, labels, registry=self.registry)  # noqa: E731
        self.signals = {
            name: gauge(f"rakuten_drift_{name}", text, ["window", "signal"])
            for name, (_, text) in SIGNAL_GAUGES.items()
        }
        self.min_effect = gauge("rakuten_drift_min_effect", "Smallest effect that alerts, per signal", ["signal"])
        self.page_effect = gauge(
            "rakuten_drift_page_effect", "Smallest effect that pages on the short window, per signal", ["signal"]
        )
        self.left_out = gauge("rakuten_drift_left_out_rows", "Window rows not tested, by reason", ["window", "reason"])
        self.products = gauge("rakuten_drift_window_products", "Logged predictions in the drift window", ["window"])
        self.top1 = gauge("rakuten_drift_mean_top1_score", "Mean top-1 score", ["window", "data"])
        self.unknown = gauge(
            "rakuten_drift_unknown_token_share",
            "Mean share of word tokens unknown to the model",
            ["window", "data"],
        )
        self.last_success = gauge("rakuten_drift_last_success_timestamp_seconds", "When drift last ran to the end")
        self.runs = Counter("rakuten_drift_runs_total", "Drift runs, by outcome", ["outcome"], registry=self.registry)
        self.retrains = Counter(
            "rakuten_retrain_runs_total", "Scheduled gated retrains, by outcome", ["outcome"], registry=self.registry
        )
        for signal in SIGNALS:
            self.min_effect.labels(signal).set(TESTS[signal][2])
            self.page_effect.labels(signal).set(PAGE_EFFECT[signal])
            for window in WINDOWS:
                for name in SIGNAL_GAUGES:
                    self.signals[name].labels(window, signal).set(math.nan)

    def run_once(self) -> str:
        """One drift run: gauges set, report written; returns the summaries (raises on failure)."""
        report = self.reports / "drift.html"
        windows = measure_windows(self.project, read_window(self.log_dir, since_time(self.since)))
        text = "\n\n".join(summary(drift) for _, drift in windows) + f"\nreport: {report}"
        write_report(windows, report, text)
        for window, drift in windows:
            self._set(window, drift)
        self.last_success.set(time.time())
        return text

    def _set(self, window: str, drift) -> None:
        for signal in SIGNALS:
            result = drift.results.get(signal)
            for name, (field, _) in SIGNAL_GAUGES.items():
                value = math.nan if result is None else float(getattr(result, field))
                self.signals[name].labels(window, signal).set(value)
        self.products.labels(window).set(len(drift.window))
        for reason, rows in (
            ("earlier_model", drift.other_models),
            ("unknown_model", drift.unknown_models),
            ("unreadable_line", drift.unreadable_lines),
        ):
            self.left_out.labels(window, reason).set(rows)
        for gauge, column in ((self.top1, "score"), (self.unknown, "unknown_share")):
            now, then = drift.means(column)
            gauge.labels(window, "window").set(now)
            gauge.labels(window, "reference").set(then)

    def _drift_forever(self, interval: float) -> None:
        while True:
            try:
                log.info("drift:\n%s", self.run_once())
                self.runs.labels("ok").inc()
            except InputError as exc:  # no log yet, no prediction in the window, model not found...
                log.warning("drift not measured: %s", exc)
                self.runs.labels("failed").inc()
            except Exception:
                log.exception("drift run crashed")
                self.runs.labels("failed").inc()
            time.sleep(interval)

    def _retrain_forever(self) -> None:
        assert self.retrain_seconds is not None  # started only when a retrain interval is set
        while True:
            time.sleep(self.retrain_seconds)
            done = subprocess.run(
                [sys.executable, "-m", "mlops_rakuten.cli", "retrain", "--reports", str(self.reports.resolve())],
                cwd=self.project,
            )
            outcome = {0: "registered", 3: "refused", 4: "not_registered", 5: "no_new_data"}.get(
                done.returncode, "failed"
            )
            self.retrains.labels(outcome).inc()
            log.info("scheduled retrain: %s (report in %s)", outcome, self.reports)

    def serve(self, host: str, port: int, interval: float) -> None:
        start_http_server(port, host, registry=self.registry)
        log.info(
            "drift every %.0fs over the last %s; metrics on http://%s:%d/metrics", interval, self.since, host, port
        )
        if self.retrain_seconds:
            threading.Thread(target=self._retrain_forever, name="retrain", daemon=True).start()
        # Live accuracy from labelled feedback, in a thread of its own at drift's pace (monitoring/live_accuracy.py).
        from mlops_rakuten.monitoring.live_accuracy import live_accuracy_forever

        live = (self.registry, self.project, self.log_dir, interval)
        threading.Thread(target=live_accuracy_forever, args=live, name="live-accuracy", daemon=True).start()
        self._drift_forever(interval)
