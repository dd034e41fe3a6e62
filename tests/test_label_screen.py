"""The label screen: pure tests of each decision and its boundaries on hand-built predictions, then for
real: `rakuten ingest` of a clean, a shuffled and a relabelled batch in a reproduced demo project,
the ingest stage's output, `rakuten batches approve`, and the retrain's second screen."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_rakuten.core.batches import ACCEPTED, QUARANTINED, Batch, read_batches
from mlops_rakuten.core.demo_data import generate
from mlops_rakuten.monitoring.batch_screen import new_batches, rescreen_new_batches
from mlops_rakuten.monitoring.label_screen import judge, parse_metrics
from mlops_rakuten.monitoring.label_statistics import Measured, binomial_less, label_issues, lower_bound
from mlops_rakuten.monitoring.reference import Built, lock_outs
from mlops_rakuten.ops.ingest import ingest
from mlops_rakuten.ops.project_lock import project_lock, state_dir

from conftest import reproduced_project, run
from serve_support import auth, client, make_settings

RAKUTEN = str(Path(sys.executable).parent / "rakuten")
CLASSES = np.array([10, 1280, 1560, 2583])


def one_hot(predicted: np.ndarray, top: float = 0.97) -> np.ndarray:
    """Production's scores: ``top`` on its prediction, the rest shared by the other classes."""
    probs = np.full((len(predicted), len(CLASSES)), (1 - top) / (len(CLASSES) - 1))
    probs[np.arange(len(predicted)), np.searchsorted(CLASSES, predicted)] = top
    return probs


def hand_built(n: int, agree: int, label: int = 10, other: int = 1280) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows labelled ``label``, the first ``agree`` predicted as it and the rest as ``other``."""
    labels = np.full(n, label)
    predicted = np.where(np.arange(n) < agree, label, other)
    return labels, predicted


def screened(labels, predicted, expected=0.85, recalls=None, **kw):
    return judge(labels, predicted, one_hot(predicted), CLASSES, expected, recalls or {}, **kw)


def test_a_batch_agreeing_as_expected_passes_and_shuffled_labels_fail():
    labels, predicted = hand_built(200, 172)
    assert screened(labels, predicted)["passed"]
    rng = np.random.default_rng(0)
    labels = rng.choice(CLASSES, 200)
    predicted = np.where(rng.random(200) < 0.85, labels, rng.choice(CLASSES, 200))
    shuffled = screened(rng.permutation(labels), predicted)
    assert not shuffled["passed"] and shuffled["agreement"] < 0.5 and "agree with production on" in shuffled["reason"]


@pytest.mark.parametrize("nudge, fails", [(1.001, True), (0.999, False)])
def test_p_value_at_alpha_boundary(nudge, fails):
    labels, predicted = hand_built(200, 120)  # 60 % against 85 %: the effect is far over the minimum
    p = binomial_less(120, 200, 0.85)
    assert screened(labels, predicted, alpha=p * nudge)["passed"] is not fails


@pytest.mark.parametrize("nudge, fails", [(-0.001, True), (0.001, False)])
def test_effect_at_its_minimum_boundary(nudge, fails):
    labels, predicted = hand_built(2000, 1500)  # 75 % against 85 %: p is tiny, the drop is 0.10
    assert screened(labels, predicted, effect=0.10 + nudge)["passed"] is not fails


def test_a_class_relabelled_is_named_with_where_its_rows_came_from():
    """30 % of 2583's 60 rows relabelled 1280: overall agreement stays high, class 1280 fails, 2583 named."""
    true = np.repeat(CLASSES, 60)
    predicted = true.copy()
    predicted[::10] = 10  # production's own errors: 90 % right
    labels = true.copy()
    labels[np.flatnonzero(true == 2583)[:18]] = 1280
    result = screened(labels, predicted, 0.85, {int(c): 0.9 for c in CLASSES})
    assert not result["passed"] and result["agreement"] > 0.8
    [flag] = result["classes"]
    assert (flag["class"], flag["predicted_as"], flag["rows"]) == (1280, 2583, 78)
    assert "class 1280 Jouets, peluches" in result["reason"] and "predicted as 2583 Piscine et spa" in result["reason"]


@pytest.mark.parametrize("nudge, flagged", [(-0.001, True), (0.001, False)])
def test_class_effect_boundary(nudge, flagged):
    labels, predicted = hand_built(200, 150)  # 75 % of class 10 against a recall of 0.95
    result = screened(labels, predicted, 0.5, {10: 0.95}, effect=0.20 + nudge)
    assert bool(result["classes"]) is flagged and result["passed"] is not flagged


def test_products_production_is_unsure_of_lower_what_is_expected():
    """A new source production does not know (top-1 score 0.4) agrees less, and is not quarantined for it;
    the same agreement where production is sure of itself is."""
    labels, predicted = hand_built(300, 110)
    unsure = judge(labels, predicted, one_hot(predicted, 0.4), CLASSES, 0.85, {10: 0.9})
    assert unsure["passed"] and unsure["expected"] == 0.4 and unsure["accuracy"] == 0.85
    sure = judge(labels, predicted, one_hot(predicted), CLASSES, 0.85, {10: 0.9})
    assert not sure["passed"] and sure["expected"] == 0.85 and sure["classes"][0]["recall"] == 0.9


@pytest.mark.parametrize("nudge, flagged", [(1.001, True), (0.999, False)])
def test_class_p_value_at_alpha_boundary(nudge, flagged):
    labels, predicted = hand_built(60, 40)  # one class: Holm's first threshold is alpha itself
    p = binomial_less(40, 60, 0.95)
    result = screened(labels, predicted, 0.5, {10: 0.95}, alpha=p * nudge)
    assert bool(result["classes"]) is flagged


@pytest.mark.parametrize("rows, judged", [(9, False), (10, True)])
def test_a_class_is_judged_from_ten_rows(rows, judged):
    labels, predicted = hand_built(rows, 0)
    assert bool(screened(labels, predicted, 0.0, {10: 0.95})["classes"]) is judged


def test_confident_learning_flags_rows_whose_label_is_unlikely_and_another_class_likely():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.7, 0.3], [0.1, 0.9]])
    given = np.array([0, 0, 0, 1, 1])  # thresholds: class 0 = (0.9+0.8+0.2)/3, class 1 = (0.3+0.9)/2
    assert label_issues(probs, given).tolist() == [False, False, True, True, False]
    assert label_issues(probs, np.array([0, 0, 0, -1, 1]))[3] == False  # noqa: E712 (an unknown label)


def test_label_issues_alone_never_quarantine():
    labels = np.repeat([10, 1280], 100)
    predicted = labels.copy()
    predicted[:14], predicted[100:114] = 1280, 10  # 14 % disagree, each way: issues, yet as production errs
    result = judge(labels, predicted, one_hot(predicted), CLASSES, 0.85, {})
    assert result["label_issues"] == 28 and result["passed"]


def test_p_values_are_taken_against_the_lower_bound_of_what_was_measured():
    expected, recalls = parse_metrics(
        json.dumps({"accuracy": 0.86, "n_test": 2000}),
        json.dumps({"10": {"recall": 1.0, "support": 5}, "40": {"recall": 0.0, "support": 0}}),
    )
    assert expected == Measured(0.86, 2000) and 0.84 < expected.bound < 0.86 and list(recalls) == [10]
    assert 0.5 < recalls[10].bound == lower_bound(1.0, 5) < 0.6  # 5 of 5 right proves over 0.55 at 95 %, no more
    labels, predicted = hand_built(40, 33)  # 82 %: impossible under a recall of 1.0, plausible under 0.55
    assert screened(labels, predicted, 0.5, recalls, effect=0.1)["classes"] == []
    assert screened(labels, predicted, 0.5, {10: 1.0}, effect=0.1)["classes"] != []


def test_only_accepted_batches_production_never_held_are_screened_again():
    batches = [Batch(i, "s", "t", 10 * i, 10 * i + 9, 10, 2, s) for i, s in enumerate([ACCEPTED] * 2 + ["approved"])]
    assert [b.id for b in new_batches(batches, pd.Index(range(10)))] == [1]


# For real, in a demo project the pipeline built (1,500 rows, model and metrics committed).

HEADER = "designation,description,prdtypecode\n"


def batch_csv(path: Path, rows: int, seed: int, labels=None) -> pd.DataFrame:
    """Products from another draw of the demo generator, four classes, as an upload."""
    x, y = generate(rows * 8, seed)
    picked = [(a[1], a[2], int(b[1])) for a, b in zip(x, y, strict=True) if int(b[1]) in (10, 1160, 2583, 2705)]
    random.Random(seed).shuffle(picked)
    frame = pd.DataFrame(picked[:rows], columns=["designation", "description", "prdtypecode"])
    if labels is not None:
        frame["prdtypecode"] = labels(frame["prdtypecode"].to_numpy())
    frame.to_csv(path, index=False)
    return frame


def rakuten(project: Path, *args: str) -> dict:
    done = run([RAKUTEN, *args], project, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def trained_rows(project: Path) -> pd.Index:
    run(["dvc", "repro", "-q", "ingest"], project)
    return pd.read_csv(project / "data/interim/products.csv", index_col=0, keep_default_na=False).index


def moved(codes: np.ndarray) -> np.ndarray:
    """30 % of class 2583 relabelled as 1560 (Mobilier), a class the batch otherwise lacks."""
    codes = codes.copy()
    pool = np.flatnonzero(codes == 2583)
    codes[pool[: int(0.3 * len(pool))]] = 1560
    return codes


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return reproduced_project(tmp_path_factory.mktemp("screen") / "project")


@pytest.mark.slow  # the `built` project runs the pipeline
def test_ingest_screens_quarantines_poisoned_batches_and_approve_trains_them(built: Path, tmp_path: Path):
    batch_csv(tmp_path / "clean.csv", 240, 31)
    answer = rakuten(built, "ingest", str(tmp_path / "clean.csv"), "--source", "clean", "--json")["batch"]
    assert answer["status"] == ACCEPTED and answer["screen"]["passed"], answer["screen"]

    rng = np.random.default_rng(32)
    batch_csv(tmp_path / "shuffled.csv", 240, 31 + 1, lambda codes: rng.permutation(codes))
    shuffled = rakuten(built, "ingest", str(tmp_path / "shuffled.csv"), "--source", "shuffled", "--json")["batch"]
    assert shuffled["status"] == QUARANTINED and shuffled["screen"]["p_value"] < 0.001, shuffled["screen"]

    batch_csv(tmp_path / "moved.csv", 240, 33, moved)
    relabelled = rakuten(built, "ingest", str(tmp_path / "moved.csv"), "--source", "moved", "--json")["batch"]
    reason = relabelled["screen"]["reason"]
    assert relabelled["status"] == QUARANTINED and "class 1560 Mobilier" in reason and "as 2583 Piscine" in reason

    listed = run([RAKUTEN, "batches", "list"], built).stdout
    assert "quarantined" in listed and "class 1560 Mobilier" in listed
    rows = trained_rows(built)
    assert rows.isin(range(answer["first_index"], answer["last_index"] + 1)).sum() == answer["rows"]
    for poisoned in (shuffled, relabelled):  # the ingest stage drops them: nothing trains on them
        assert not rows.isin(range(poisoned["first_index"], poisoned["last_index"] + 1)).any()
    run([RAKUTEN, "batches", "approve", str(relabelled["id"])], built)
    assert pd.Index(range(relabelled["first_index"], relabelled["last_index"] + 1)).isin(trained_rows(built)).all()


@pytest.mark.slow  # the `built` project runs the pipeline
def test_retrain_screens_an_unscreened_batch_again_and_commits_its_quarantine(built: Path, tmp_path: Path):
    rng = np.random.default_rng(41)
    path = tmp_path / "late.csv"
    batch_csv(path, 200, 41, lambda codes: rng.permutation(codes))
    answer = ingest(built, state_dir(built), path.read_bytes(), path.name, source="late")  # no screen: accepted
    assert answer["batch"]["status"] == ACCEPTED and answer["batch"]["screen"] is None
    run(["git", "commit", "-q", "-m", "late batch", "--", "data/raw.dvc"], built)
    production = Built("", None, lock_outs(run(["git", "show", "HEAD:dvc.lock"], built).stdout))
    with project_lock(state_dir(built)):  # as under POST /retrain: the server holds the project for the run
        [done] = rescreen_new_batches(built, production, "HEAD")
    assert (
        done.id == answer["batch"]["id"]
        and done.status == QUARANTINED
        and done.screen is not None
        and not done.screen["passed"]
    )
    assert read_batches(built / "data/raw")[-1].status == QUARANTINED
    assert run(["git", "status", "--porcelain", "data/raw.dvc"], built).stdout == ""
    assert "Quarantine batch" in run(["git", "log", "-1", "--format=%s"], built).stdout


@pytest.mark.slow  # the `built` project runs the pipeline
def test_post_ingest_screens_with_the_served_model(built: Path, tmp_path: Path):
    settings = make_settings(built, tmp_path / "secrets")
    rng = np.random.default_rng(51)
    path = tmp_path / "api.csv"
    batch_csv(path, 120, 51, lambda codes: rng.permutation(codes))
    with client(settings) as api:
        files = {"file": (path.name, path.read_bytes(), "text/csv")}
        response = api.post("/ingest?source=api", files=files, headers=auth(settings, "alice", "admin"))
    assert response.status_code == 200, response.text
    batch = response.json()["batch"]
    assert batch["status"] == QUARANTINED and "agree with production on" in batch["screen"]["reason"]
