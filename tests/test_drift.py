"""Drift for real: a served model logs three windows of products (like its training data, two classes only,
English text); `rakuten drift` tests them, the monitor service exposes the tests, and the alert rules,
fed the gauges it exposed, fire on the shifted windows only."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from mlops_rakuten.core.demo_data import generate
from mlops_rakuten.devtools.drift_alert_timeline import rules
from mlops_rakuten.monitoring.significance import SIGNALS
from test_prediction_log import logged_rows, login

from conftest import ROOT, needs
from serve_support import build_project, free_port, make_settings, start_server, stop, wait_until

RAKUTEN = str(Path(sys.executable).parent / "rakuten")
WINDOW = 200
ENGLISH = (
    ["Waterproof", "Wireless", "Vintage", "Portable", "Stainless steel", "Handmade", "Kids", "Outdoor"],
    [
        "hiking boots",
        "headphones",
        "record player",
        "coffee grinder",
        "garden hose",
        "bookshelf speaker",
        "teddy bear",
        "camping lantern",
        "phone charger",
        "yoga mat",
    ],
    [
        "with carrying case",
        "for men and women",
        "black",
        "rechargeable battery",
        "easy to clean",
        "two year warranty",
        "gift idea",
        "free shipping",
    ],
)


def windows() -> dict[str, list[dict]]:
    """Three windows of WINDOW products, none of them seen in training (other seeds)."""
    rand = random.Random(3)
    x_rows, y_rows = generate(2_000, seed=7)
    like_training = [{"designation": x[1], "description": x[2]} for x in rand.sample(x_rows, WINDOW)]
    two = [
        {"designation": x[1], "description": x[2]}
        for x, y in zip(x_rows, y_rows, strict=True)
        if y[1] in ("2583", "1160")
    ]
    english = [
        {
            "designation": f"{rand.choice(ENGLISH[0])} {rand.choice(ENGLISH[1])}",
            "description": f"{rand.choice(ENGLISH[1])} {rand.choice(ENGLISH[2])}, {rand.choice(ENGLISH[2])}",
        }
        for _ in range(WINDOW)
    ]
    return {"same": like_training, "two_classes": two[:WINDOW], "english": english}


@pytest.fixture(scope="module")
def logged(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """The project, and one prediction log folder per window, each written by a real server."""
    root = tmp_path_factory.mktemp("drift")
    settings = make_settings(build_project(root / "project"), root / "secrets")
    folders = {}
    for name, products in windows().items():
        assert len(products) == WINDOW
        folders[name] = root / f"log-{name}"
        port = free_port()
        os.environ["RAKUTEN_PREDICTION_LOG_DIR"] = str(folders[name])  # server_env copies os.environ
        try:
            process = start_server(settings, port, root / f"server-{name}.log")
        finally:
            del os.environ["RAKUTEN_PREDICTION_LOG_DIR"]
        try:
            base = f"http://127.0.0.1:{port}"
            headers = {"Authorization": f"Bearer {login(base, 'bob')}"}
            for start in range(0, WINDOW, 64):
                answer = httpx.post(f"{base}/predict", json=products[start : start + 64], headers=headers, timeout=60)
                assert answer.status_code == 200, answer.text
            wait_until(lambda name=name: len(logged_rows(folders[name])) == WINDOW, f"{WINDOW} logged rows")
        finally:
            stop(process)
    return settings.project_dir, folders


def drift(project: Path, folder: Path, report: Path) -> dict:
    """`rakuten drift --json` over the window."""
    done = subprocess.run(
        [RAKUTEN, "drift", "--since", "1h", "--log-dir", str(folder), "--out", str(report), "--json"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    print(done.stdout)
    short, result = json.loads(done.stdout)["windows"]
    assert result["tested"] and set(result["signals"]) == set(SIGNALS), done.stdout
    # Logged within a minute: the short window (the last hour) holds the same products.
    assert short["window"] == "short" and short["products"] == result["products"] == WINDOW
    return result


def flagged(result: dict, verdict: str) -> set[str]:
    return {signal for signal, test in result["signals"].items() if test[verdict]}


@pytest.mark.server
def test_tests_separate_a_window_like_training_from_shifted_ones(logged, tmp_path):
    project, folders = logged
    result = {name: drift(project, folder, tmp_path / f"{name}.html") for name, folder in folders.items()}
    same = result["same"]
    assert flagged(same, "significant") == set(), same["signals"]
    assert abs(same["means"]["unknown_share"]["window"] - same["means"]["unknown_share"]["reference"]) < 0.05
    assert same["means"]["score"]["reference"] - same["means"]["score"]["window"] < 0.1
    two = result["two_classes"]
    assert "predicted_class" in flagged(two, "alert"), two["signals"]
    assert two["signals"]["predicted_class"]["effect"] > 2 * same["signals"]["predicted_class"]["effect"]
    english = result["english"]
    assert {"unknown_majority", "low_score", "unknown_tokens"} <= flagged(english, "alert"), english["signals"]
    assert english["signals"]["unknown_majority"]["effect"] > 0.5
    assert english["means"]["score"]["reference"] - english["means"]["score"]["window"] > 0.2
    page = (tmp_path / "two_classes.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "predicted_class" in page


def scrape(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("rakuten_drift_") and not line.startswith("#")
    }


def monitored(project: Path, folder: Path, reports: Path) -> dict[str, float]:
    """Gauges of a real `rakuten monitor` after its first run over ``folder``."""
    port = free_port()
    log = reports / "monitor.log"
    reports.mkdir()
    with open(log, "w") as output:
        process = subprocess.Popen(
            [
                RAKUTEN,
                "monitor",
                "--interval",
                "1h",
                "--since",
                "1h",
                "--port",
                str(port),
                "--log-dir",
                str(folder),
                "--reports",
                str(reports),
            ],
            cwd=project,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        return wait_until(
            lambda: scrape(port).get('rakuten_drift_window_products{window="day"}') == WINDOW and scrape(port),
            "the monitor's first drift run",
            timeout=120,
            process=process,
            log=log,
        )
    finally:
        stop(process)


@pytest.mark.server
def test_monitor_gauges_fire_the_alerts_on_shifted_windows_only(logged, tmp_path):
    """The gauges a real monitor served, held for 90 minutes, through promtool: each rule fires on the series
    its condition (read off the gauges) names, and nowhere else."""
    promtool = needs("promtool")
    project, folders = logged
    gauges = {name: monitored(project, folder, tmp_path / name) for name, folder in folders.items()}
    assert (tmp_path / "same" / "drift.html").is_file()
    series: list[str] = []
    expected: dict[str, list[str]] = {rule.name: [] for rule in rules(ROOT)}
    for name, values in gauges.items():
        where = f'job="rakuten-monitor", instance="{name}"'
        for key, value in values.items():
            if key.startswith(("rakuten_drift_effect{", "rakuten_drift_alert{", "rakuten_drift_page_effect{")):
                labels = key[key.index("{") + 1 : -1]
                series.append(
                    f"      - series: '{key[: key.index('{')]}{{{where}, {labels}}}'\n        values: '{value}x150'"
                )
        for window in ("short", "day"):
            for signal in SIGNALS:
                at = f'signal="{signal}",window="{window}"'  # the exposition sorts labels
                effect, alert = values[f"rakuten_drift_effect{{{at}}}"], values[f"rakuten_drift_alert{{{at}}}"] == 1
                significant = values[f"rakuten_drift_significant{{{at}}}"] == 1
                assert alert == (significant and effect >= values[f'rakuten_drift_min_effect{{signal="{signal}"}}'])
                page = alert and effect >= values[f'rakuten_drift_page_effect{{signal="{signal}"}}']
                for rule in rules(ROOT):
                    if (
                        window in rule.windows
                        and signal in rule.signals
                        and (page if rule.condition == "page" else alert)
                    ):
                        expected[rule.name].append(
                            f"          - exp_labels: {{severity: {rule.severity}, job: rakuten-monitor, "
                            f"instance: {name}, window: {window}, signal: {signal}}}\n"
                            f"            exp_annotations:\n              summary: {json.dumps(rule.summary.format(window=window, signal=signal, value=effect))}"
                        )
    fired = {alert: {line.split("instance: ")[1].split(",")[0] for line in lines} for alert, lines in expected.items()}
    assert fired["RakutenInputDrift"] >= {"two_classes"} and "same" not in fired["RakutenInputDrift"]
    assert fired["RakutenUnknownTokensRising"] == fired["RakutenTop1ScoreFalling"] == {"english"}
    assert fired["RakutenDriftPage"] == {"two_classes", "english"}  # the whole window changed
    tests = [
        f"      - eval_time: 90m\n        alertname: {alert}\n        exp_alerts:\n" + "\n".join(lines)
        for alert, lines in expected.items()
    ]
    test_file = tmp_path / "measured_test.yml"
    test_file.write_text(
        f"rule_files:\n  - {ROOT / 'deployments/prometheus/drift-alerts.yml'}\n"
        f"evaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n"
        + "\n".join(series)
        + "\n    alert_rule_test:\n"
        + "\n".join(tests)
        + "\n"
    )
    done = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True)
    assert done.returncode == 0, test_file.read_text() + done.stdout + done.stderr


def test_hand_written_alert_rule_tests_pass():
    done = subprocess.run(
        [needs("promtool"), "test", "rules", str(ROOT / "tests/prometheus/drift_alerts_test.yml")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.server
def test_log_lines_cut_mid_write_are_counted_in_the_drift_summary_report_and_export(logged, tmp_path):
    project, folders = logged
    folder = tmp_path / "log"
    shutil.copytree(folders["same"], folder)
    with open(sorted(folder.glob("predictions-*.jsonl"))[-1], "a") as log:
        log.write('{"time": "2026-01-01T00:00:00+00:00", "prdtypeco\n')  # the end of a write a full disk cut
    note = "1 unreadable line(s) of the log left out (cut by a full disk or a crash mid-write)"
    report = tmp_path / "drift.html"
    done = subprocess.run(
        [RAKUTEN, "drift", "--since", "1h", "--log-dir", str(folder), "--out", str(report)],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert f"  {note}" in done.stdout.splitlines(), done.stdout
    assert note in report.read_text()
    export = subprocess.run(
        [RAKUTEN, "predictions", "export", "--since", "1h", "--log-dir", str(folder), "--out", str(tmp_path / "x.csv")],
        capture_output=True,
        text=True,
    )
    assert export.returncode == 0 and f"wrote {WINDOW} product(s)" in export.stderr, export.stderr
    assert export.stderr.rstrip().endswith(f"; {note}"), export.stderr
