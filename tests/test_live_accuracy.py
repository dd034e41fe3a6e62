"""Live accuracy (monitoring/live_accuracy.py) for real: a reproduced demo project's model answers products
into the server's own prediction log, `rakuten predictions export` writes them out, their true labels are
filled in and `rakuten ingest --source feedback` brings them back; the gauges then hold the model's accuracy
on them with its Wilson interval, and the alert rule, fed those gauges by promtool, fires only once a
source the model does not know has come back labelled."""

from __future__ import annotations

import csv
import json
import math
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry
from sklearn.pipeline import Pipeline

from mlops_rakuten.core.batches import BATCHES_FILE, Batch
from mlops_rakuten.core.categories import DEFAULT_TOP_K
from mlops_rakuten.core.demo_data import COLOURS, WORDS, generate
from mlops_rakuten.core.paths import X_FILE, Y_FILE
from mlops_rakuten.core.predict import clean_texts, load_model, predict_top_k_cleaned
from mlops_rakuten.monitoring.live_accuracy import LiveAccuracyGauges, join_key, measure, summary, wilson
from mlops_rakuten.monitoring.prediction_log import LogSettings, PredictionLog
from mlops_rakuten.ops.dvcfiles import file_md5
from mlops_rakuten.text import clean_text

from conftest import ROOT, needs, reproduced_project, run
from serve_support import free_port, stop, wait_until

RAKUTEN = str(Path(sys.executable).parent / "rakuten")


def test_wilson_interval_matches_its_formula_at_the_edges():
    low, high = wilson(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    assert wilson(0, 10)[0] == 0.0 and round(wilson(0, 10)[1], 4) == 0.2775  # never below 0, never 0 wide
    assert round(wilson(10, 10)[0], 4) == 0.7225 and wilson(10, 10)[1] <= 1.0
    assert all(math.isnan(v) for v in wilson(0, 0))  # no label: no made-up interval
    assert wilson(800, 1000)[1] - wilson(800, 1000)[0] < wilson(80, 100)[1] - wilson(80, 100)[0]


def test_the_join_key_is_the_text_the_model_read():
    # As logged (cleaned) and as uploaded back: the same key; a title moved into the description too.
    assert (
        join_key("Piscine &amp; <b>spa</b>", "  bleue ") == join_key("Piscine & spa", "bleue") == "Piscine & spa bleue"
    )
    assert join_key("Piscine", "spa bleue") == join_key("Piscine spa", "bleue")
    assert join_key("Piscine spa", "") != join_key("Piscine spas", "")  # an edited text is another product


def hand_made_project(root: Path, x_rows: list[list[str]], codes: list[int], arrived: str) -> Path:
    """data/raw with one accepted batch of ``x_rows`` (designation, description), a dvc.lock recording model
    md5 "m" * 32 and its metrics (accuracy 0.9 on 200)."""
    raw = root / "data" / "raw"
    raw.mkdir(parents=True)
    with open(raw / X_FILE, "w", newline="", encoding="utf-8") as xs, open(raw / Y_FILE, "w", newline="") as ys:
        csv.writer(xs).writerows([["", "designation", "description", "productid", "imageid"]])
        csv.writer(ys).writerows([["", "prdtypecode"]])
        csv.writer(xs).writerows([[i, d, s, "", ""] for i, (d, s) in enumerate(x_rows)])
        csv.writer(ys).writerows([[i, code] for i, code in enumerate(codes)])
    batch = Batch(1, "feedback", arrived, 0, len(x_rows) - 1, len(x_rows), 0, "accepted")
    (raw / BATCHES_FILE).write_text(json.dumps(batch.as_dict()) + "\n")
    (root / "metrics").mkdir()
    (root / "metrics" / "metrics.json").write_text('{"accuracy": 0.9, "n_test": 200}')
    outs = [{"path": "models/model.joblib", "md5": "m" * 32}]
    outs.append({"path": "metrics/metrics.json", "md5": file_md5(root / "metrics" / "metrics.json")})
    (root / "dvc.lock").write_text(json.dumps({"schema": "2.0", "stages": {"train": {"outs": outs}}}))
    return root


def log_line(when: str, version: str, code: int, designation: str, description: str = "") -> str:
    row = {"time": when, "model_version": version, "prdtypecode": code, "score": 0.9, "top_k": [[code, 0.9]]}
    return json.dumps({**row, "text_chars": 9, "designation": designation, "description": description})


def test_an_export_sent_back_and_a_product_labelled_from_its_html_both_join(tmp_path):
    triple = "Piscine &amp;amp;amp; spa"  # cleaned once, as logged: "Piscine &amp; spa"; cleaned twice: "Piscine & spa"
    logged = clean_text(triple)
    assert logged == "Piscine &amp; spa" != clean_text(logged)
    project = hand_made_project(
        tmp_path / "p",
        [[logged, ""], ["<b>Robot</b> piscine", "&eacute;lectrique"], ["Chaise de jardin", ""]],
        [2583, 2583, 2582],
        "2026-01-02T00:00:00Z",
    )
    folder = tmp_path / "log"
    folder.mkdir()
    (folder / "predictions-20260101T000000-h-1-1.jsonl").write_text(
        "\n".join(
            [
                log_line("2026-01-01T10:00:00.000+00:00", "m" * 32, 2583, logged),  # the export sent back
                log_line("2026-01-01T10:00:01.000+00:00", "m" * 32, 1300, "Robot piscine", "électrique"),  # wrong
                log_line("2026-01-01T10:00:02.000+00:00", "m" * 32, 2582, "Chaise de jardin"),
                log_line("2026-01-01T10:00:03.000+00:00", "m" * 32, 2582, "Chaise de jardin"),  # again: once
                log_line("2026-01-02T10:00:00.000+00:00", "m" * 32, 1300, "Chaise de jardin"),  # after its label
                log_line("2026-01-01T10:00:04.000+00:00", "u" * 32, 2583, logged),  # a model no dvc.lock records
                '{"time": "2026-01-01T10:00:05',  # cut mid-write
                json.dumps(
                    {
                        "time": "2026-01-01T10:00:06.000+00:00",
                        "model_version": "m" * 32,
                        "prdtypecode": 10,
                        "score": 0.5,
                        "tokens": 3,
                        "unknown_tokens": 0,
                    }
                ),  # features mode: no text
            ]
        )
        + "\n"
    )
    result = measure(project, folder, now=datetime(2026, 1, 3, tzinfo=timezone.utc))
    (version,) = result.versions
    assert (version.correct, version.labelled, version.holdout, version.n_test) == (2, 3, 0.9, 200)
    assert (result.labelled_products, result.unknown_model, result.no_text) == (3, 1, 1)
    assert not version.below_holdout  # 2 of 3: an interval far too wide to say anything
    assert measure(project, folder, now=datetime(2026, 3, 1, tzinfo=timezone.utc)).versions == []  # past retention

    # A newer model built since: the answering one's build and holdout are found in the history.
    for command in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "m"]):
        run(["git", *command], project)
    (project / "metrics" / "metrics.json").write_text('{"accuracy": 0.5, "n_test": 10}')
    (project / "dvc.lock").write_text((project / "dvc.lock").read_text().replace("m" * 32, "n" * 32))
    (version,) = measure(project, folder, now=datetime(2026, 1, 3, tzinfo=timezone.utc)).versions
    head = run(["git", "rev-parse", "HEAD"], project).stdout.strip()
    assert (version.built_at, version.holdout, version.n_test) == (head, 0.9, 200)
    (project / "metrics" / "metrics.json").write_text('{"accuracy": 0.5, "n_test": 10}')  # the workspace's, stale
    (project / "dvc.lock").write_text((project / "dvc.lock").read_text().replace("n" * 32, "m" * 32))
    (version,) = measure(project, folder, now=datetime(2026, 1, 3, tzinfo=timezone.utc)).versions
    assert version.built_at == "workspace" and math.isnan(version.holdout)  # not the metrics built with it


@dataclass(frozen=True)
class Served:
    pipeline: Pipeline
    md5: str


def like_training(rows: int, seed: int) -> list[tuple[str, str, int]]:
    """(designation, description, true class) of demo products the model never saw (another seed)."""
    x, y = generate(rows, seed)
    return [(a[1], a[2], int(b[1])) for a, b in zip(x, y, strict=True)]


def unknown_source(rows: int, seed: int) -> list[tuple[str, str, int]]:
    """A pool-equipment partner: terse titles of product lines the catalogue never had, all class 2583."""
    rand = random.Random(seed)
    syllables = ["aqua", "lo", "neo", "ra", "vel", "tor", "zen", "mar", "ix", "sol"]
    lines = ["".join(rand.choices(syllables, k=3)).capitalize() for _ in range(8)]
    titles = {f"{rand.choice(lines)} {rand.choice(WORDS)} {rand.choice(COLOURS)} {n}" for n in range(rows)}
    return [(title, "", 2583) for title in sorted(titles)]


def answer(served: Served, folder: Path, products: list[tuple[str, str, int]]) -> dict[str, int]:
    """The model answers the products into the server's log (as serve/batching.py does); key -> predicted."""
    frame = pd.DataFrame([p[:2] for p in products], columns=["designation", "description"])
    codes, scores = predict_top_k_cleaned(served.pipeline, clean_texts(served.pipeline, frame), DEFAULT_TOP_K)
    log = PredictionLog(LogSettings(mode="text", folder=folder), CollectorRegistry())
    for (designation, description, _), top_codes, top_scores in zip(products, codes, scores, strict=True):
        log.append(designation, description, top_codes, top_scores, served)
    log.close()
    return {join_key(d, s): int(c[0]) for (d, s, _), c in zip(products, codes, strict=True)}


def feedback(project: Path, folder: Path, truth: dict[str, int], out: Path, since: str = "1d") -> dict:
    """Export the log, fill in the labels the products really have, ingest the file back as one batch."""
    run([RAKUTEN, "predictions", "export", "--log-dir", str(folder), "--since", since, "--out", str(out)], project)
    with open(out, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    labelled = [
        {**row, "prdtypecode": truth[join_key(row["designation"], row["description"])]}
        for row in rows
        if join_key(row["designation"], row["description"]) in truth
    ]
    with open(out, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, ["designation", "description", "prdtypecode"])
        writer.writeheader()
        writer.writerows(labelled)
    done = run([RAKUTEN, "ingest", str(out), "--source", "feedback", "--json"], project)
    return json.loads(done.stdout)["batch"]


def expected(predicted: dict[str, int], truth: dict[str, int]) -> tuple[int, int]:
    return sum(1 for key, code in predicted.items() if truth[key] == code), len(predicted)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """One project, one log: good feedback first (products like the training data), then a source the model
    does not know; the measures and gauges after each."""
    root = tmp_path_factory.mktemp("live-accuracy")
    project = reproduced_project(root / "project")
    model = project / "models" / "model.joblib"
    served = Served(load_model(model), file_md5(model))
    folder = root / "log"
    metrics = json.loads((project / "metrics" / "metrics.json").read_text())
    good = like_training(300, seed=31)
    truth = {join_key(d, s): code for d, s, code in good}
    predicted = answer(served, folder, good)
    answer(served, folder, good[:40])  # asked again: the same answers, counted once
    answer(Served(served.pipeline, "0" * 32), folder, good[:25])  # a model no dvc.lock records
    first = feedback(project, folder, truth, root / "good.csv")
    after_good = measure(project, folder)
    registry = CollectorRegistry()
    gauges = LiveAccuracyGauges(registry)
    gauges.update(project, folder)
    snapshot_good = gauge_values(registry)

    answer(served, folder, good[40:60])  # answered after their labels came back: not live evidence
    bad = unknown_source(300, seed=32)
    bad_truth = {join_key(d, s): code for d, s, code in bad}
    bad_predicted = answer(served, folder, bad)
    second = feedback(project, folder, bad_truth, root / "bad.csv", since="1d")
    after_bad = measure(project, folder)
    gauges.update(project, folder)
    return {
        "project": project,
        "folder": folder,
        "md5": served.md5,
        "metrics": metrics,
        "batches": (first, second),
        "good": (after_good, expected(predicted, truth), snapshot_good),
        "bad": (after_bad, expected({**predicted, **bad_predicted}, {**truth, **bad_truth}), gauge_values(registry)),
        "keys": (set(truth), set(bad_truth)),
        "registry": registry,
    }


def gauge_values(registry: CollectorRegistry) -> dict[str, float]:
    return {
        sample.name + json.dumps(sample.labels, sort_keys=True): sample.value
        for metric in registry.collect()
        for sample in metric.samples
    }


@pytest.mark.slow  # the scenario runs the pipeline
def test_accuracy_per_model_from_real_feedback_with_its_wilson_interval(scenario):
    first, second = scenario["batches"]
    assert first["source"] == second["source"] == "feedback"
    # Labels of a source the model does not know disagree with it: the screen quarantines them, and they count.
    assert (first["status"], second["status"]) == ("accepted", "quarantined"), (first["screen"], second["screen"])
    for state in ("good", "bad"):
        result, (correct, labelled), _ = scenario[state]
        print(summary(result))
        (version,) = result.versions
        assert version.model_version == scenario["md5"] and version.built_at == "workspace"
        assert (version.correct, version.labelled) == (correct, labelled)
        assert version.interval == wilson(correct, labelled)
        assert version.holdout == scenario["metrics"]["accuracy"] and version.n_test == scenario["metrics"]["n_test"]
        assert result.unknown_model == 25  # the unrecorded model's labelled answers: counted, not labelled
    good, bad = scenario["good"][0].versions[0], scenario["bad"][0].versions[0]
    # Asked twice: counted once; answered after its label came back: not counted.
    assert good.labelled == len(scenario["keys"][0]) and bad.labelled == len(scenario["keys"][0] | scenario["keys"][1])
    assert good.quarantined == 0 and bad.quarantined == len(scenario["keys"][1] - scenario["keys"][0])
    assert not good.below_holdout, summary(scenario["good"][0])
    assert bad.below_holdout and bad.interval[1] < good.interval[0], summary(scenario["bad"][0])


@pytest.mark.slow  # the scenario runs the pipeline
def test_the_gauges_carry_the_measure_per_model_version(scenario):
    values = scenario["bad"][2]
    version = scenario["bad"][0].versions[0]
    label = json.dumps({"model_version": scenario["md5"]})
    assert values[f"rakuten_live_accuracy{label}"] == version.accuracy
    assert values[f"rakuten_live_accuracy_lower{label}"] == version.interval[0]
    assert values[f"rakuten_live_accuracy_upper{label}"] == version.interval[1]
    assert values[f"rakuten_live_accuracy_labelled_products{label}"] == version.labelled
    assert values[f"rakuten_live_accuracy_quarantined_products{label}"] == version.quarantined > 0
    assert values[f"rakuten_live_accuracy_holdout{label}"] == scenario["metrics"]["accuracy"]
    assert values['rakuten_live_accuracy_left_out_products{"reason": "unknown_model"}'] == 25
    assert not any("0" * 32 in key for key in values)  # the unrecorded model is no label value


@pytest.mark.slow  # the scenario runs the pipeline
def test_the_gauges_follow_a_rejected_batch_and_a_log_gone_and_nothing_else(scenario, tmp_path):
    project, folder = scenario["project"], tmp_path / "log"
    shutil.copytree(scenario["folder"], folder)
    registry = CollectorRegistry()
    gauges, label = LiveAccuracyGauges(registry), {"model_version": scenario["md5"]}
    gauges.update(project, folder)
    gauges.update(project, folder)  # nothing changed: the last measure stands
    assert gauges.measures == 1
    assert (
        registry.get_sample_value("rakuten_live_accuracy_labelled_products", label)
        == scenario["bad"][0].versions[0].labelled
    )
    second = scenario["batches"][1]
    run([RAKUTEN, "batches", "reject", str(second["id"])], project)
    try:
        gauges.update(project, folder)
        assert gauges.measures == 2
        assert registry.get_sample_value("rakuten_live_accuracy_labelled_products", label) == len(scenario["keys"][0])
        (version,) = measure(project, folder).versions
        assert (version.correct, version.labelled) == scenario["good"][1]
    finally:
        run([RAKUTEN, "batches", "approve", str(second["id"])], project)
    for path in folder.iterdir():  # the log's retention deleted every file
        path.unlink()
    gauges.update(project, folder)
    assert gauges.measures == 3 and registry.get_sample_value("rakuten_live_accuracy", label) is None


@pytest.mark.slow  # the scenario runs the pipeline
def test_the_alert_fires_on_the_gauges_after_the_unknown_source_only(scenario, tmp_path):
    series = []
    for instance, state in (("good", "good"), ("bad", "bad")):
        values = scenario[state][2]
        for name in ("rakuten_live_accuracy_upper", "rakuten_live_accuracy_holdout_lower"):
            value = values[name + json.dumps({"model_version": scenario["md5"]})]
            series.append(
                f'      - series: \'{name}{{job="rakuten-monitor", instance="{instance}", '
                f"model_version=\"{scenario['md5']}\"}}'\n        values: '{value}x60'"
            )
    upper = scenario["bad"][2]["rakuten_live_accuracy_upper" + json.dumps({"model_version": scenario["md5"]})]
    test_file = tmp_path / "measured_test.yml"
    test_file.write_text(
        f"rule_files:\n  - {ROOT / 'deployments/prometheus/accuracy-alerts.yml'}\nevaluation_interval: 1m\n"
        "tests:\n  - interval: 1m\n    input_series:\n" + "\n".join(series) + "\n    alert_rule_test:\n"
        "      - eval_time: 45m\n        alertname: RakutenLiveAccuracyBelowHoldout\n        exp_alerts:\n"
        f"          - exp_labels: {{severity: warning, job: rakuten-monitor, instance: bad, "
        f'model_version: {scenario["md5"]}}}\n            exp_annotations:\n              summary: "Model '
        f"{scenario['md5']} is right on at most {upper * 100:.4g}% of the labelled live products (95 % upper "
        "bound), significantly below its holdout: see `rakuten drift` and the monitor's log\"\n"
    )
    done = subprocess.run([needs("promtool"), "test", "rules", str(test_file)], capture_output=True, text=True)
    assert done.returncode == 0, test_file.read_text() + done.stdout + done.stderr


def test_hand_written_accuracy_alert_tests_pass():
    done = subprocess.run(
        [needs("promtool"), "test", "rules", str(ROOT / "tests/prometheus/accuracy_alerts_test.yml")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def live_gauges(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("rakuten_live_accuracy") and not line.startswith("#")
    }


@pytest.mark.slow
@pytest.mark.server  # a real `rakuten monitor`
def test_the_monitor_serves_the_live_accuracy_gauges(scenario, tmp_path):
    port, log = free_port(), tmp_path / "monitor.log"
    command = [RAKUTEN, "monitor", "--interval", "1h", "--port", str(port), "--log-dir", str(scenario["folder"])]
    with open(log, "w") as output:
        process = subprocess.Popen(
            [*command, "--reports", str(tmp_path)], cwd=scenario["project"], stdout=output, stderr=subprocess.STDOUT
        )
    try:
        label = f'{{model_version="{scenario["md5"]}"}}'
        served = wait_until(
            lambda: f"rakuten_live_accuracy{label}" in (gauges := live_gauges(port)) and gauges,
            "the monitor's first live accuracy",
            timeout=120,
            process=process,
            log=log,
        )
    finally:
        stop(process)
    version = measure(scenario["project"], scenario["folder"]).versions[0]
    assert served[f"rakuten_live_accuracy{label}"] == version.accuracy
    assert served[f"rakuten_live_accuracy_upper{label}"] == version.interval[1]
    assert "SIGNIFICANTLY BELOW holdout" in log.read_text()  # what the monitor's log tells the on-call engineer
