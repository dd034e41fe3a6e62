"""End to end: the real `dvc repro` in a temp git repo on a small demo set."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import joblib
import pandas as pd
import pytest
import yaml

from mlops_rakuten.core.categories import CODES

from conftest import ROOT, run

STAGES = ["check_params", "ingest", "preprocess", "split", "featurize", "train", "evaluate"]


@pytest.mark.slow
def test_repro_builds_metrics_plots_and_a_model_that_predicts_raw_text(project: Path):
    out = run(["dvc", "repro"], project).stdout
    assert [s for s in STAGES if f"Running stage '{s}'" in out] == STAGES

    metrics = json.loads((project / "metrics/metrics.json").read_text())
    assert set(metrics) >= {"accuracy", "f1_weighted", "f1_macro", "n_train", "n_test"}
    assert 0.5 < metrics["f1_weighted"] <= 1.0
    assert metrics["n_train"] + metrics["n_test"] <= 1500
    assert metrics["n_test"] == len(pd.read_csv(project / "data/split/test.csv"))

    classes = json.loads((project / "metrics/classes.json").read_text())
    assert sorted(int(c) for c in classes) == list(CODES)
    assert set(classes["2583"]) == {"precision", "recall", "f1", "support"}

    assert (project / "plots/confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    predictions = pd.read_csv(project / "plots/predictions.csv")
    assert list(predictions.columns) == ["actual", "predicted", "actual_class", "predicted_class"]
    assert len(predictions) == metrics["n_test"]

    # The saved Pipelines take raw title/description. The hold-out one is what evaluate scored;
    # the shipped one was refitted on train + test, so it differs and knows the test rows better.
    test = pd.read_csv(project / "data/split/test.csv", index_col=0, keep_default_na=False)
    holdout = joblib.load(project / "models/holdout_model.joblib")
    assert (holdout.predict(test[["designation", "description"]]) == predictions["predicted"].to_numpy()).all()
    shipped = joblib.load(project / "models/model.joblib")
    assert (shipped.named_steps["classifier"].coef_ != holdout.named_steps["classifier"].coef_).any()
    shipped_right = (shipped.predict(test[["designation", "description"]]) == test["prdtypecode"]).mean()
    assert shipped_right > metrics["accuracy"]

    status = run(["dvc", "status"], project).stdout
    assert "up to date" in status
    # Each plot once: the PNG as an image, the CSV as the project's confusion chart (details: test_pr_report.py).
    plots = json.loads(run(["dvc", "plots", "show", "--json", "-o", str(project.parent / "dvc_plots")], project).stdout)
    assert {name: [entry["type"] for entry in entries] for name, entries in plots["data"].items()} == {
        "plots/confusion_matrix.png": ["image"],
        "plots/predictions.csv": ["vega"],
    }
    assert "parseInt(datum['predicted_class'])" in json.dumps(plots["data"]["plots/predictions.csv"][0]["content"])


@pytest.mark.slow
def test_repro_is_byte_for_byte_reproducible(project: Path):
    run(["dvc", "repro"], project)
    first_lock = (project / "dvc.lock").read_bytes()
    models = [project / "models/model.joblib", project / "models/holdout_model.joblib"]
    first_models = [m.read_bytes() for m in models]
    run(["dvc", "repro", "--force"], project, env={"PYTHONHASHSEED": "12345"})
    assert (project / "dvc.lock").read_bytes() == first_lock
    assert [m.read_bytes() for m in models] == first_models
    # A second, unforced repro has nothing to do.
    assert "Running stage" not in run(["dvc", "repro"], project).stdout


@pytest.mark.slow
def test_changing_model_params_reruns_only_train_and_evaluate(project: Path):
    run(["dvc", "repro"], project)
    params = project / "params.yaml"
    # n_jobs only splits the work (the outputs are byte-identical, tests/test_one_vs_rest.py and
    # test_stages.py): dvc.yaml lists params per key without them, so nothing but check_params reruns.
    params.write_text(re.sub(r"(?m)^  n_jobs: .*$", "  n_jobs: 1", params.read_text()))
    status = json.loads(run(["dvc", "status", "--json"], project).stdout)
    assert list(status) == ["check_params"], status
    out = run(["dvc", "repro"], project).stdout
    assert [s for s in STAGES if f"Running stage '{s}'" in out] == ["check_params"]
    params.write_text(re.sub(r"(?m)^  C: .*$", "  C: 0.123", params.read_text()))
    out = run(["dvc", "repro"], project).stdout
    # check_params reads every section; its output is unchanged, so ingest .. featurize skip.
    assert [s for s in STAGES if f"Running stage '{s}'" in out] == ["check_params", "train", "evaluate"]


def test_each_param_is_listed_by_the_stage_of_its_section_and_only_n_jobs_by_none():
    """Params per key: a key added to params.yaml but not to its stage in dvc.yaml would change nothing."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    listed = {key: stage for stage, entry in stages.items() for key in entry.get("params", []) if isinstance(key, str)}
    section_stage = {"model": "train"}
    for key, stage in listed.items():
        assert key.split(".")[0] in params and stage == section_stage.get(key.split(".")[0], key.split(".")[0]), key
    every = {f"{section}.{key}" for section, keys in params.items() for key in keys}
    assert every - set(listed) == {"featurize.n_jobs", "model.n_jobs"}
    assert set(listed) <= every, f"dvc.yaml lists params that params.yaml lacks: {set(listed) - every}"


def test_committed_dvc_lock_matches_the_code_it_was_built_from():
    """Editing a stage's code without rerunning `dvc repro` would leave make run with a dirty tree."""
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())
    stale = [
        f"{stage}: {dep['path']}"
        for stage, entry in lock["stages"].items()
        for dep in entry.get("deps", [])
        if dep["path"].startswith("src/") and hashlib.md5((ROOT / dep["path"]).read_bytes()).hexdigest() != dep["md5"]
    ]
    assert not stale, f"dvc.lock is out of date, run dvc repro and commit it: {stale}"
