"""The drift alert rules (deployments/prometheus/drift-alerts.yml) replayed minute by minute on the gauges
a monitor would have served, and the same series written as a `promtool test rules` file that checks the
rules fire exactly then.

A monitor run sets, per window and signal, ``rakuten_drift_effect`` and ``rakuten_drift_alert`` (and
``page`` = alert and effect >= ``rakuten_drift_page_effect``); Prometheus sees the last run's values and
evaluates each rule every minute: a series is pending from the first minute its condition holds and fires
once it has held for the rule's ``for:``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from mlops_rakuten.monitoring.significance import PAGE_EFFECT, SIGNALS, Result

RULES_FILE = "deployments/prometheus/drift-alerts.yml"
LABELS = {"job": "rakuten-monitor", "instance": "monitor:9108"}
WINDOWS = ("short", "day")


@dataclass(frozen=True)
class Rule:
    name: str
    condition: str  # "page" or "alert": the Result field the expression encodes
    windows: tuple[str, ...]
    signals: tuple[str, ...]
    for_minutes: int
    severity: str
    summary: str  # the annotation, with {window}, {signal} and {value} for its template's fields


KINDS = {"RakutenUnknownTokensRising": ("unknown_majority",), "RakutenTop1ScoreFalling": ("low_score",)}


def rules(root: Path) -> list[Rule]:
    """The drift rules as the YAML states their for: and severity (their expressions are what Rule encodes)."""
    found = {r["alert"]: r for g in yaml.safe_load((root / RULES_FILE).read_text())["groups"] for r in g["rules"]}
    specific = {s for signals in KINDS.values() for s in signals}
    shapes = {
        "RakutenDriftPage": ("page", ("short",), SIGNALS),
        "RakutenInputDrift": ("alert", WINDOWS, tuple(s for s in SIGNALS if s not in specific)),
        **{name: ("alert", WINDOWS, signals) for name, signals in KINDS.items()},
    }
    out = []
    for name, (condition, windows, signals) in shapes.items():
        rule = found[name]
        minutes = _minutes(rule["for"])
        summary = rule["annotations"]["summary"]
        for template, field in (
            ("{{ $labels.window }}", "{window}"),
            ("{{ $labels.signal }}", "{signal}"),
            ('{{ $value | printf "%.3f" }}', "{value:.3f}"),
        ):
            summary = summary.replace(template, field)
        out.append(Rule(name, condition, windows, signals, minutes, rule["labels"]["severity"], summary))
    return out


def _minutes(value: str) -> int:
    return int(value[:-1]) * {"m": 1, "h": 60}[value[-1]]


Run = dict[str, dict[str, Result]]  # window -> signal -> result (empty: not tested)


def gauges(run: Run, window: str, signal: str) -> tuple[float, bool, bool]:
    """(effect, alert, page) as the gauges show them after this run (NaN effect when untested)."""
    result = run.get(window, {}).get(signal)
    if result is None:
        return float("nan"), False, False
    return float(f"{result.effect:.6g}"), result.alert, result.page


def firing(rule: Rule, runs: dict[int, Run], minutes: range) -> dict[int, dict[tuple[str, str], float]]:
    """Minute -> the (window, signal) series of ``rule`` firing then, with their effect ($value)."""
    last: Run = {}
    since: dict[tuple[str, str], int] = {}
    out = {}
    for minute in minutes:
        last = runs.get(minute, last)
        now = {}
        for window in rule.windows:
            for signal in rule.signals:
                effect, alert, page = gauges(last, window, signal)
                holds = page if rule.condition == "page" else alert
                key = (window, signal)
                if not holds:
                    since.pop(key, None)
                    continue
                since.setdefault(key, minute)
                if minute - since[key] >= rule.for_minutes:
                    now[key] = effect
        out[minute] = now
    return out


def first_firing(rule: Rule, timeline: dict[int, dict[tuple[str, str], float]]) -> int | None:
    return next((minute for minute, series in timeline.items() if series), None)


def _values(values: list[str]) -> str:
    """promtool's expanding notation: runs of one value as 'v+0xN'."""
    parts, i = [], 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        parts.append(values[i] if j == i else f"{values[i]}+0x{j - i}")
        i = j + 1
    return " ".join(parts)


def promtool_case(name: str, all_rules: list[Rule], runs: dict[int, Run], minutes: range) -> dict:
    """One test of the promtool file: the gauges of ``runs`` from minute 0, and per rule, the series firing
    at its first firing minute and none the minute before (or none at the last minute)."""
    assert minutes.start == 0
    series = []
    for window in WINDOWS:
        for signal in SIGNALS:
            effects, alerts = [], []
            last: Run = {}
            for minute in minutes:
                last = runs.get(minute, last)
                effect, alert, _ = gauges(last, window, signal)
                effects.append("NaN" if effect != effect else f"{effect:.6g}")
                alerts.append("1" if alert else "0")
            labels = ", ".join(f'{k}="{v}"' for k, v in {**LABELS, "window": window, "signal": signal}.items())
            series.append({"series": f"rakuten_drift_effect{{{labels}}}", "values": _values(effects)})
            series.append({"series": f"rakuten_drift_alert{{{labels}}}", "values": _values(alerts)})
    for signal in SIGNALS:
        labels = ", ".join(f'{k}="{v}"' for k, v in {**LABELS, "signal": signal}.items())
        series.append(
            {"series": f"rakuten_drift_page_effect{{{labels}}}", "values": f"{PAGE_EFFECT[signal]}x{len(minutes)}"}
        )
    checks = []
    for rule in all_rules:
        timeline = firing(rule, runs, minutes)
        first = first_firing(rule, timeline)
        for minute in [minutes[-1]] if first is None else [first - 1, first]:
            expected = [
                {
                    "exp_labels": {"severity": rule.severity, **LABELS, "window": window, "signal": signal},
                    "exp_annotations": {"summary": rule.summary.format(window=window, signal=signal, value=value)},
                }
                for (window, signal), value in sorted(timeline[minute].items())
            ]
            checks.append({"eval_time": f"{minute}m", "alertname": rule.name, "exp_alerts": expected})
    return {"name": name, "interval": "1m", "input_series": series, "alert_rule_test": checks}


def write_promtool_file(target: Path, cases: list[dict], command: str) -> None:
    header = (
        f"# Generated by `{command}`: the gauges a monitor served on each scenario of make bench-drift, minute by\n"
        "# minute from 30 minutes before the shift, and where the bench's replay of the rules says each fires.\n"
        "# promtool test rules checks the rules agree (tests/test_drift_rules.py).\n"
    )
    body = {"rule_files": [f"../../{RULES_FILE}"], "evaluation_interval": "1m", "tests": cases}
    target.write_text(header + yaml.safe_dump(body, sort_keys=False, width=200), encoding="utf-8")
