"""Drift for real: a served model logs three windows of products (like its training data, two classes only,
English text); `rakuten drift` scores them, the monitor service exposes the scores, and the alert rules,
fed the scores it exposed, fire on the shifted windows only."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from mlops_rakuten.core.demo_data import generate
from test_prediction_log import logged_rows, login

from conftest import ROOT, needs
from serve_support import build_project, free_port, make_settings, start_server, stop, wait_until

RAKUTEN = str(Path(sys.executable).parent / "rakuten")
WINDOW = 200
SIGNALS = ("predicted_class", "top1_score", "text_length", "unknown_tokens")
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


def drift(project: Path, folder: Path, report: Path) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    done = subprocess.run(
        [RAKUTEN, "drift", "--since", "1h", "--log-dir", str(folder), "--out", str(report)],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    print(done.stdout)
    scores = {m.group(1): float(m.group(2)) for m in re.finditer(r"^  (\w+)\s+([\d.]+)$", done.stdout, re.M)}
    means = {
        m.group(1): (float(m.group(2)), float(m.group(3)))
        for m in re.finditer(r"^  mean ([\w -]+?)\s+window\s+([\d.]+)\s+reference\s+([\d.]+)", done.stdout, re.M)
    }
    assert set(scores) == set(SIGNALS) and len(means) == 3, done.stdout
    return scores, means


@pytest.mark.server
def test_scores_separate_a_window_like_training_from_shifted_ones(logged, tmp_path):
    project, folders = logged
    result = {name: drift(project, folder, tmp_path / f"{name}.html") for name, folder in folders.items()}
    same, same_means = result["same"]
    assert max(same.values()) < 0.2, same
    assert abs(same_means["unknown-token share"][0] - same_means["unknown-token share"][1]) < 0.05
    assert same_means["top-1 score"][1] - same_means["top-1 score"][0] < 0.1
    two, _ = result["two_classes"]
    # Above the drift alert's threshold (0.3, deployments/prometheus/drift-alerts.yml), the same window below it.
    assert two["predicted_class"] > 0.4 and two["predicted_class"] > 2 * same["predicted_class"], (two, same)
    english, english_means = result["english"]
    assert english["unknown_tokens"] > 0.5, english
    assert english_means["unknown-token share"][0] - english_means["unknown-token share"][1] > 0.3
    assert english_means["top-1 score"][1] - english_means["top-1 score"][0] > 0.2
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
            lambda: scrape(port).get("rakuten_drift_window_products") == WINDOW and scrape(port),
            "the monitor's first drift run",
            timeout=120,
            process=process,
            log=log,
        )
    finally:
        stop(process)


@pytest.mark.server
def test_monitor_gauges_fire_the_alerts_on_shifted_windows_only(logged, tmp_path):
    promtool = needs("promtool")
    project, folders = logged
    gauges = {name: monitored(project, folder, tmp_path / name) for name, folder in folders.items()}
    assert (tmp_path / "same" / "drift.html").is_file()
    series: list[str] = []
    expected: dict[str, list[str]] = {
        "RakutenInputDrift": [],
        "RakutenUnknownTokensRising": [],
        "RakutenTop1ScoreFalling": [],
    }
    for name, values in gauges.items():
        where = f'job="rakuten-monitor", instance="{name}"'
        for key, value in values.items():
            if key.startswith(
                ("rakuten_drift_score{", "rakuten_drift_unknown_token_share{", "rakuten_drift_mean_top1_score{")
            ):
                labels = key[key.index("{") + 1 : -1]
                series.append(
                    f"      - series: '{key[: key.index('{')]}{{{where}, {labels}}}'\n        values: '{value}x150'"
                )
        for signal in SIGNALS:
            score = values[f'rakuten_drift_score{{signal="{signal}"}}']
            if score > 0.3:
                expected["RakutenInputDrift"].append(
                    f"          - exp_labels: {{severity: warning, job: rakuten-monitor, instance: {name}, "
                    f'signal: {signal}}}\n            exp_annotations:\n              summary: "Drift of {signal} is '
                    f"{score:.2f} (> 0.3) for an hour: see the monitor's reports/drift.html\""
                )
    unknown = {
        n: v['rakuten_drift_unknown_token_share{data="window"}']
        - v['rakuten_drift_unknown_token_share{data="reference"}']
        for n, v in gauges.items()
    }
    falling = {
        n: v['rakuten_drift_mean_top1_score{data="reference"}'] - v['rakuten_drift_mean_top1_score{data="window"}']
        for n, v in gauges.items()
    }
    fired = [line.split("instance: ")[1].split(",")[0] for line in expected["RakutenInputDrift"]]
    assert "same" not in fired and "two_classes" in fired and "english" in fired
    summaries = {
        "RakutenUnknownTokensRising": lambda v: f"{v * 100:.4g}% more unknown word tokens than in the training split",
        "RakutenTop1ScoreFalling": lambda v: f"Mean top-1 score {v:.2f} below the training split's",
    }
    for alert, by_window in (("RakutenUnknownTokensRising", unknown), ("RakutenTop1ScoreFalling", falling)):
        assert [name for name, value in by_window.items() if value > 0.1] == ["english"]
        expected[alert].append(
            f"          - exp_labels: {{severity: warning, job: rakuten-monitor, instance: english}}\n"
            f'            exp_annotations:\n              summary: "{summaries[alert](by_window["english"])}"'
        )
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
