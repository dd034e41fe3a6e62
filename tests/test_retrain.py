"""The gated retrain for real: a project on a bare git remote and S3 (SeaweedFS), v1.0.0 registered and in
prod. New products like the old ones give a candidate that is registered as v1.1.0 (prod unchanged); a
mislabelled upload gives one that is refused, kept as a DVC experiment, with the report saying why.

A second project, on a bare git remote and a folder as DVC remote: with nothing new in data/raw no
candidate is built; a new source unlike the old catalogue gives a candidate within noise on the
frozen set and far better on the new products, accepted where the old fixed margin refused it."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from mlops_rakuten.core.demo_data import COLOURS, WORDS, X_FILE, Y_FILE, generate
from mlops_rakuten.devtools.project_copy import add_raw_data, copy_project
from mlops_rakuten.monitoring.gate import CLASS_DROP, F1_MARGIN, MIN_SUPPORT

from conftest import ROOT, needs, run
from serve_support import auth, free_port, make_settings, start_server, stop, wait_until
from team_remote import TeamRemote

pytestmark = pytest.mark.server

NAME = "rakuten-classifier"
RAKUTEN = str(Path(sys.executable).parent / "rakuten")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    needs("weed")
    root = tmp_path_factory.mktemp("retrain")
    # 1,500 products: 150 frozen for the comparison (fewer, and one product moves F1 by a percent).
    project = copy_project(ROOT, root / "project")
    add_raw_data(project, rows=1_500)
    run(["dvc", "repro", "-q"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "pipeline reproduced"], project)
    remote = TeamRemote.create(project, root)
    try:
        run([RAKUTEN, "register", "v1.0.0"], project)
        run(["gto", "assign", NAME, "--version", "v1.0.0", "--stage", "prod", "--push"], project)
        yield project
    finally:
        remote.stop()


def append_rows(project: Path, x_rows: list[list[str]], y_rows: list[list[str]]) -> None:
    """Products appended to data/raw as /ingest would (new ids after the last), recorded and committed."""
    raw = project / "data" / "raw"
    with open(raw / Y_FILE, encoding="utf-8") as handle:
        start = sum(1 for _ in handle) - 1
    with open(raw / X_FILE, "a", newline="", encoding="utf-8") as xs, open(raw / Y_FILE, "a", newline="") as ys:
        for x, y in zip(x_rows, y_rows, strict=True):
            index = str(start + int(x[0]))
            csv.writer(xs, lineterminator="\n").writerow([index, *x[1:]])
            csv.writer(ys, lineterminator="\n").writerow([index, y[1]])
    run(["dvc", "add", "-q", "data/raw"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", f"{len(x_rows)} more products"], project)


def append_raw(project: Path, rows: int, seed: int, shift_labels: bool = False) -> None:
    x_rows, y_rows = generate(rows, seed)
    if shift_labels:  # a broken export: every label one row off
        y_rows = [[y[0], previous[1]] for y, previous in zip(y_rows, y_rows[-1:] + y_rows[:-1], strict=True)]
    append_rows(project, x_rows, y_rows)


def pool_partner(rows: int, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    """A new source unlike the catalogue so far: a pool-equipment partner, every listing class 2583, terse
    titles naming its own product lines (words production never saw) and generic words, no description;
    a third also name the product ("Piscine Hors Sol"...), which production knows.

    The demo generator has no option for a shifted source: its rows give the ids, the rest is rewritten.
    """
    x_rows, _ = generate(rows, seed)
    rand = random.Random(seed)
    syllables = ["aqua", "lo", "neo", "ra", "vel", "tor", "zen", "mar", "ix", "sol"]
    lines = ["".join(rand.choices(syllables, k=3)).capitalize() for _ in range(6)]
    nouns = ["Piscine Hors Sol", "Spa Gonflable", "Pompe De Filtration", "Robot Piscine"]
    titles = [
        (f"{rand.choice(nouns)} " if rand.random() < 1 / 3 else "")
        + f"{rand.choice(lines)} {rand.choice(WORDS)} {rand.choice(COLOURS)}"
        for _ in x_rows
    ]
    x_rows = [[x[0], title, "", *x[3:]] for x, title in zip(x_rows, titles, strict=True)]
    return x_rows, [[x[0], "2583"] for x in x_rows]


def retrain(project: Path) -> tuple[subprocess.CompletedProcess, str]:
    done = subprocess.run([RAKUTEN, "retrain"], cwd=project, capture_output=True, text=True, check=False)
    print(done.stdout, done.stderr[-3000:])
    report = Path(done.stdout.strip().splitlines()[-1].removeprefix("report: "))
    return done, (project / report).read_text(encoding="utf-8")


def versions(project: Path) -> dict[str, list[str]]:
    shown = json.loads(run(["gto", "show", NAME, "--json"], project).stdout)
    return {v["version"]: sorted(s["stage"] for s in v.get("stages") or []) for v in shown}


def test_a_candidate_as_good_as_production_is_registered_not_promoted(project):
    append_raw(project, 1_500, seed=11)
    head = run(["git", "rev-parse", "HEAD"], project).stdout.strip()
    done, report = retrain(project)
    assert done.returncode == 0, done.stderr
    assert "Candidate **accepted**: registered as rakuten-classifier v1.1.0" in report
    assert versions(project) == {"v1.0.0": ["prod"], "v1.1.0": []}  # never promoted by itself
    frozen = (project / "data/eval/frozen_test_ids.csv").read_text().split()
    assert frozen[0] == "id" and len(frozen) > 140  # production's test split, committed before the candidate ran
    log = run(["git", "log", "--format=%s", f"{head}..HEAD"], project).stdout
    assert "Freeze the evaluation set" in log and "Retrain retrain-" in log
    assert run(["git", "status", "--porcelain"], project).stdout == ""
    for section in ("### Metrics", "| f1_weighted |", "| 2583 Piscine", "production.png", "candidate.png"):
        assert section in report
    assert "| frozen | 150 |" in report and "| new since production |" in report  # every slice, with its verdict
    name = report.split("## Retrain report: ")[1].split()[0]
    assert (project / "reports" / f"{name}-candidate.png").stat().st_size > 10_000


def test_a_worse_candidate_is_refused_and_kept_as_an_experiment(project):
    # A mislabelled upload twice as large as the data so far: its labels are one row off. (Half as large,
    # it cost -0.037 on the 150 frozen products, which noise explains: accepted. docs/monitoring.md)
    append_raw(project, 6_000, seed=12, shift_labels=True)
    head = run(["git", "rev-parse", "HEAD"], project).stdout.strip()
    tags = run(["git", "tag"], project).stdout
    done, report = retrain(project)
    assert done.returncode == 3, done.stderr
    assert "Candidate **refused**" in report and "Why it was refused:" in report
    assert "- frozen worse: weighted F1" in report and "| **worse** |" in report
    assert "| 2583 Piscine et spa | 18 |" in report  # per class, with names
    name = report.split("## Retrain report: ")[1].split()[0]
    assert f"kept as DVC experiment {name}" in report
    assert name in run(["dvc", "exp", "list", "--name-only"], project).stdout
    assert run(["git", "rev-parse", "HEAD"], project).stdout.strip() == head  # nothing committed
    assert run(["git", "tag"], project).stdout == tags  # nothing registered
    assert run(["git", "status", "--porcelain"], project).stdout == ""


def test_the_writer_retrains_through_the_api_with_the_same_gate(project, tmp_path):
    """POST /retrain on a real server runs the same command: the bad data is still there, so refused."""
    settings = make_settings(project, tmp_path / "secrets")
    port = free_port()
    server = start_server(settings, port, tmp_path / "server.log")
    try:
        base = f"http://127.0.0.1:{port}"
        assert httpx.post(f"{base}/retrain", headers=auth(settings, "bob", "user")).status_code == 403
        admin = auth(settings, "alice", "admin")
        started = httpx.post(f"{base}/retrain", headers=admin)
        assert started.status_code == 202, started.text
        assert httpx.post(f"{base}/train", headers=admin).status_code == 409  # one run at a time

        def finished():
            job = httpx.get(f"{base}{started.json()['status_url']}", headers=admin).json()
            return job if job["status"] != "running" else None

        job = wait_until(finished, "the retrain run", timeout=900)
        assert job["outcome"] == "refused", job
        report = (project / job["report"]).read_text(encoding="utf-8")
        assert "Candidate **refused**" in report and "- frozen worse: weighted F1" in report
        assert run(["git", "status", "--porcelain"], project).stdout == ""
    finally:
        stop(server)


@pytest.fixture(scope="module")
def local_project(tmp_path_factory):
    """1,500 demo products, v1.0.0 registered and in prod; the remotes a bare repository and a folder."""
    root = tmp_path_factory.mktemp("retrain-local")
    project = copy_project(ROOT, root / "project")
    add_raw_data(project, rows=1_500)
    run(["dvc", "repro", "-q"], project)
    run(["dvc", "remote", "add", "-d", "origin", str(root / "dvc-remote")], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "pipeline reproduced"], project)
    run(["dvc", "push", "-q"], project)
    run(["git", "init", "-q", "--bare", "-b", "main", str(root / "origin.git")], root)
    run(["git", "remote", "add", "origin", str(root / "origin.git")], project)
    run(["git", "push", "-q", "origin", "main"], project)
    run([RAKUTEN, "register", "v1.0.0"], project)
    run(["gto", "assign", NAME, "--version", "v1.0.0", "--stage", "prod", "--push"], project)
    return project


def retrain_json(project: Path) -> tuple[int, dict]:
    done = subprocess.run([RAKUTEN, "retrain", "--json"], cwd=project, capture_output=True, text=True, check=False)
    print(done.stdout, done.stderr[-3000:])
    return done.returncode, json.loads(done.stdout)


def test_with_no_new_data_no_candidate_is_built(local_project):
    head = run(["git", "rev-parse", "HEAD"], local_project).stdout
    status, result = retrain_json(local_project)
    assert status == 5
    assert result["new_data"] is False and result["accepted"] is False
    assert result["reason"].startswith("no new data: data/raw at HEAD (md5 ")
    assert "is what production rakuten-classifier v1.0.0" in result["reason"]
    assert (result["slices"], result["experiment"], result["version"], result["report"]) == ([], None, None, None)
    assert run(["git", "rev-parse", "HEAD"], local_project).stdout == head  # not even the frozen set
    assert (local_project / "data/eval/frozen_test_ids.csv").read_text().split() == ["id"]  # still empty
    assert run(["git", "status", "--porcelain"], local_project).stdout == ""
    assert run(["dvc", "exp", "list", "--name-only"], local_project).stdout.strip() == ""


def test_within_noise_on_the_frozen_set_and_better_on_new_products_is_accepted(local_project):
    """The old fixed margin refused this candidate for a loss on 150 frozen products that noise explains."""
    append_rows(local_project, *pool_partner(600, seed=21))
    status, result = retrain_json(local_project)
    assert status == 0
    assert result["accepted"] is True and result["new_data"] is True and result["version"] == "v1.1.0"
    frozen, new = result["slices"]
    assert (frozen["name"], frozen["n"], frozen["verdict"]) == ("frozen", 150, "within noise")
    assert frozen["low"] < -F1_MARGIN < frozen["high"]
    assert (new["name"], new["verdict"]) == ("new since production", "better")
    assert (
        new["n"] >= 30 and new["low"] > 0.2
    )  # production knows "Piscine", not the partner's names; the candidate does
    assert not any(c["refuses"] for c in result["classes"])
    # The old rule on the same comparison: weighted F1 at most F1_MARGIN below production on the frozen
    # set, no class with MIN_SUPPORT frozen products losing more than CLASS_DROP.
    old_rule_accepts = frozen["delta"] >= -F1_MARGIN and not any(
        c["slice"] == "frozen" and c["support"] >= MIN_SUPPORT and c["delta"] < -CLASS_DROP for c in result["classes"]
    )
    assert not old_rule_accepts, frozen
    report = (local_project / result["report"]).read_text(encoding="utf-8")
    assert "Candidate **accepted**: registered as rakuten-classifier v1.1.0" in report
    assert f"| frozen | 150 | {frozen['production_f1']:.4f} | {frozen['candidate_f1']:.4f} |" in report
    assert f"| new since production | {new['n']} |" in report and "| better |" in report
    assert f"- decision: {result['reason']}" in report
    assert "### Confusion matrices on the frozen set" in report


def test_frozen_ids_stay_in_the_test_split_whatever_is_added(tmp_path):
    import pandas as pd

    from mlops_rakuten.core.errors import InputError
    from mlops_rakuten.stages.split import read_frozen_ids, split, split_with_frozen

    x_rows, y_rows = generate(1_000, seed=5)
    frame = pd.DataFrame(
        {
            "designation": [x[1] for x in x_rows],
            "description": [x[2] for x in x_rows],
            "prdtypecode": [int(y[1]) for y in y_rows],
        },
        index=[int(x[0]) for x in x_rows],
    )
    params = {"test_size": 0.1, "seed": 42}
    first = frame.iloc[:600]
    assert all(
        a.equals(b)
        for a, b in zip(
            split_with_frozen(first, params, Path("x"), set()), split(first, params, Path("x")), strict=True
        )
    )  # an empty list changes nothing
    frozen = set(split(first, params, Path("x"))[1].index)
    train, test = split_with_frozen(frame, params, Path("x"), frozen)  # 400 products added
    assert frozen <= set(test.index) and not frozen & set(train.index)
    assert len(train) + len(test) == len(frame)
    ids = tmp_path / "ids.csv"
    ids.write_text("id\n3\n17\n")
    assert read_frozen_ids(ids) == {3, 17} and read_frozen_ids(tmp_path / "none.csv") == set()
    ids.write_text("product\nabc\n")
    with pytest.raises(InputError, match="ids.csv: expected one column 'id'"):
        read_frozen_ids(ids)
