"""Batches: every uploaded row knows its batch, held-out rows never train a model, bad batches add nothing.

Pure tests first (the held-out choice, the record, the upload checks, the split), then for real: `rakuten
ingest` and `rakuten batches` in a throw-away git + DVC project, the stages run on what they wrote, and a
`kill -9` in the middle of an ingest.
"""

from __future__ import annotations

import csv
import io
import json
import random
import signal
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import sparse

from mlops_rakuten.core.batches import (
    APPROVED,
    BATCHES_FILE,
    HELD_OUT_SHARE,
    QUARANTINED,
    REJECTED,
    Batch,
    held_out_rows,
    is_held_out,
    parse_batches,
    read_batches,
    untrainable_rows,
)
from mlops_rakuten.core.demo_data import generate
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.one_vs_rest import fit_linear_svc
from mlops_rakuten.core.paths import X_FILE, Y_FILE
from mlops_rakuten.monitoring.batch_slices import ALL_BATCHES, batch_slices
from mlops_rakuten.ops.upload import BatchRefused, check_new_ids, check_upload
from mlops_rakuten.stages.split import split, split_with_frozen
from mlops_rakuten.stages.train import fit_holdout_and_shipped

from conftest import ROOT, run

RAKUTEN = str(Path(sys.executable).parent / "rakuten")
PARAMS = {"test_size": 0.1, "seed": 42}
HEADER = "designation,description,prdtypecode,productid,imageid\n"


def batch(id: int, first: int, last: int, status: str = "accepted") -> Batch:
    return Batch(id, f"source-{id}", "2026-01-01T00:00:00Z", first, last, last - first + 1, 0, status)


def test_the_held_out_share_is_fixed_and_never_changes():
    held = is_held_out(range(20_000))
    assert abs(held.mean() - HELD_OUT_SHARE) < 0.01
    assert np.array_equal(held, is_held_out(range(20_000)))
    # The same ids forever: a new salt or hash would move rows models may already have been fitted on.
    assert np.flatnonzero(held[:40]).tolist() == [3, 8, 16, 24, 31, 35, 36]
    assert np.array_equal(is_held_out(np.arange(40, dtype=np.int64)), held[:40])


def test_only_batch_rows_are_held_out_and_only_barred_batches_are_dropped():
    batches = [batch(1, 1000, 1999), batch(2, 2000, 2999, QUARANTINED), batch(3, 3000, 3999, REJECTED)]
    ids = np.arange(4000)
    held = held_out_rows(ids, batches)
    assert not held[:1000].any() and abs(held[1000:].mean() - HELD_OUT_SHARE) < 0.03
    barred = untrainable_rows(ids, batches)
    assert not barred[:2000].any() and barred[2000:].all()
    approved = [batch(1, 1000, 1999), batch(2, 2000, 2999, APPROVED), batch(3, 3000, 3999, REJECTED)]
    assert untrainable_rows(ids, approved).sum() == 1000


def test_a_damaged_record_is_named_with_its_line():
    good = json.dumps(batch(1, 0, 9).as_dict())
    with pytest.raises(InputError, match=r"batches.jsonl line 2: not a batch record"):
        parse_batches(good + '\n{"id": 2}\n', "batches.jsonl")
    with pytest.raises(InputError, match=r"line 1: status 'maybe'"):
        parse_batches(good.replace('"accepted"', '"maybe"'), "batches.jsonl")


def test_held_out_rows_always_go_to_the_test_split_and_nothing_changes_without_them():
    x, y = generate(600, 3)
    products = pd.DataFrame(
        {"designation": [r[1] for r in x], "description": [r[2] for r in x], "prdtypecode": [int(r[1]) for r in y]},
        index=[int(r[0]) for r in x],
    )
    plain_train, plain_test = split(products, PARAMS, Path("clean.csv"))
    same_train, same_test = split_with_frozen(products, PARAMS, Path("clean.csv"), set())
    assert same_train.equals(plain_train) and same_test.equals(plain_test)
    marked = products.assign(held_out=held_out_rows(products.index, [batch(1, 400, 599)]))
    train, test = split_with_frozen(marked, PARAMS, Path("clean.csv"), set())
    held = set(marked.index[marked["held_out"]])
    assert held and held <= set(test.index) and not held & set(train.index)
    assert len(train) + len(test) == len(products)


def test_the_shipped_model_is_never_refitted_on_held_out_rows():
    params = {**yaml.safe_load((ROOT / "params.yaml").read_text())["model"], "n_jobs": 1}
    rng = np.random.default_rng(0)
    x, y = sparse.csr_matrix(rng.random((60, 8)), dtype=np.float32), np.repeat([10, 40, 50], 20)
    train, test = (x[:45], y[:45]), (x[45:], y[45:])
    held = np.arange(15) % 3 == 0  # 5 of the 15 test rows
    _, shipped = fit_holdout_and_shipped(train, test, params, held)
    kept = np.concatenate([np.arange(45), 45 + np.flatnonzero(~held)])
    assert (shipped.coef_ == fit_linear_svc(x[kept], y[kept], params).coef_).all()
    _, everything = fit_holdout_and_shipped(train, test, params, np.zeros(15, dtype=bool))
    assert (everything.coef_ == fit_linear_svc(x, y, params).coef_).all()  # nothing held out: as before


def csv_text(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    buffer.write(HEADER)
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def test_an_unknown_class_refuses_the_batch_naming_the_line_past_a_multiline_field():
    data = csv_text([["Piscine", "deux\nlignes", "2583", "11", ""], ["Livre", "", "2584", "12", ""]])
    with pytest.raises(BatchRefused, match=r"^new.csv: line 4: prdtypecode '2584' is not one of the 27 class codes"):
        check_upload(data, "new.csv")


def test_a_product_id_twice_refuses_the_batch_naming_both_lines():
    data = csv_text([["Piscine", "", "2583", "11", ""], ["Livre", "", "10", "12", ""], ["Jouet", "", "1280", "11", ""]])
    with pytest.raises(
        BatchRefused, match=r"line 4: productid 11 appears twice \(first on line 2\); nothing was added"
    ):
        check_upload(data, "new.csv")


def test_a_product_id_already_in_the_raw_data_refuses_the_batch(tmp_path):
    (tmp_path / X_FILE).write_text(",designation,description,productid,imageid\n0,a,,11,\n1,b,,,\n")
    upload = check_upload(csv_text([["Livre", "", "10", "", ""], ["Piscine", "", "2583", "11", ""]]), "new.csv")
    with pytest.raises(BatchRefused, match=r"line 3: productid 11 is already in data/raw \(index 0\)"):
        check_new_ids(upload, tmp_path)
    check_new_ids(check_upload(csv_text([["Piscine", "", "2583", "", ""]]), "new.csv"), tmp_path)  # no id: fine


def test_the_gate_gets_one_slice_per_source_and_one_of_all_held_out_rows():
    test = pd.DataFrame({"designation": "x", "description": "", "prdtypecode": 10}, index=range(0, 3000))
    batches = [batch(1, 1000, 1999), batch(2, 2000, 2499), batch(3, 2500, 2999)]
    batches[2] = Batch(3, "source-1", "2026-01-02T00:00:00Z", 2500, 2999, 500, 0, "accepted")  # source 1 again
    trained = pd.Index([2500 + i for i in range(500) if is_held_out([2500 + i])[0]][:10])  # an older production's
    slices = {name: (rows, about) for name, rows, about in batch_slices(test, trained, batches)}
    assert list(slices) == ["held out, source source-1", "held out, source source-2", ALL_BATCHES]
    held = set(test.index[held_out_rows(test.index, batches)]) - set(trained)
    assert set(slices[ALL_BATCHES][0].index) == held and not held & set(range(1000))
    assert set(slices["held out, source source-2"][0].index) == {i for i in held if 2000 <= i < 2500}
    assert "of the 2 batch(es) from source-1" in slices["held out, source source-1"][1]
    assert batch_slices(test, trained, []) == []


# For real: the rakuten command in a demo project (conftest's `project`: 1,500 rows, committed).


def shifted_batch(rows: int, seed: int) -> list[list[str]]:
    """Labelled products from another source: another draw of the demo generator, five classes only."""
    x, y = generate(max(rows * 6, 600), seed)
    picked = [(a, b) for a, b in zip(x, y, strict=True) if int(b[1]) in (10, 1160, 1280, 2583, 2705)]
    random.Random(seed).shuffle(picked)
    return [[a[1], a[2], b[1], a[3], a[4]] for a, b in picked[:rows]]


def raw_state(project: Path) -> dict[str, bytes]:
    raw = project / "data" / "raw"
    return {p.name: p.read_bytes() for p in sorted(raw.iterdir())}


def rakuten(project: Path, *args: str, check: bool = True):
    result = run([RAKUTEN, *args], project, check=False)
    assert not check or result.returncode == 0, result.stderr
    return result


def stage_products(project: Path) -> pd.DataFrame:
    """The ingest stage's output on the project's data/raw now."""
    run(["dvc", "repro", "-q", "ingest"], project)
    return pd.read_csv(project / "data/interim/products.csv", index_col=0, keep_default_na=False)


def test_ingest_records_a_batch_and_refuses_bad_ones_adding_nothing(project: Path, tmp_path: Path):
    batch_file = tmp_path / "shop-b.csv"
    batch_file.write_bytes(csv_text(shifted_batch(150, 7)))
    before = raw_state(project)
    answer = json.loads(rakuten(project, "ingest", str(batch_file), "--source", "shop-b", "--json").stdout)
    record = answer["batch"]
    assert record["source"] == "shop-b" and record["status"] == "accepted"
    assert record["screen"] == {"skipped": "no model"}  # the pipeline never ran: nothing to screen against
    assert (record["id"], record["first_index"], record["last_index"], record["rows"]) == (1, 1500, 1649, 150)
    assert record["held_out"] == int(is_held_out(range(1500, 1650)).sum()) > 0
    assert read_batches(project / "data/raw")[0].as_dict() == record
    after = raw_state(project)
    assert all(after[name].startswith(before[name]) for name in (X_FILE, Y_FILE))  # existing rows untouched
    assert "modified" not in run(["dvc", "status", "data/raw.dvc"], project).stdout

    again = rakuten(project, "ingest", str(batch_file), check=False)  # the same products sent twice
    assert (
        again.returncode == 1
        and "line 2: productid" in again.stderr
        and "is already in data/raw (index 1500)" in again.stderr
    )
    rows = shifted_batch(3, 8)
    bad = {
        "unknown-class": [*rows[:2], [rows[2][0], "", "31", "", ""]],
        "duplicate-id": [rows[0], rows[1], [*rows[2][:3], rows[0][3], ""]],
    }
    for name, content in bad.items():
        path = tmp_path / f"{name}.csv"
        path.write_bytes(csv_text(content))
        refused = rakuten(project, "ingest", str(path), check=False)
        assert refused.returncode == 1 and "line 4:" in refused.stderr and "nothing was added" in refused.stderr
    assert raw_state(project) == after

    products = stage_products(project)  # held-out rows marked, the rest of the batch trains
    assert list(products.columns) == ["designation", "description", "prdtypecode", "held_out"]
    assert products.loc[1500:, "held_out"].sum() == record["held_out"] and not products.loc[:1499, "held_out"].any()
    rakuten(project, "batches", "reject", "1")
    assert "rejected" in rakuten(project, "batches", "list").stdout
    assert stage_products(project).index.max() == 1499  # a rejected batch trains nothing
    assert rakuten(project, "batches", "approve", "1").returncode == 0
    assert stage_products(project).index.max() == 1649
    assert "modified" not in run(["dvc", "status", "data/raw.dvc"], project).stdout


def test_without_batches_the_products_table_is_as_before(project: Path):
    products = stage_products(project)
    assert list(products.columns) == ["designation", "description", "prdtypecode"]
    assert not (project / "data/raw" / BATCHES_FILE).exists()


KILLED_WHILE = """
import os, signal, sys
from mlops_rakuten.cli import main
calls = {{"n": 0}}
real = getattr(os, {target!r})
def kill_on_call(*args, **kwargs):
    calls["n"] += 1
    if calls["n"] == {when}:
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9: no cleanup, no finally blocks
    return real(*args, **kwargs)
setattr(os, {target!r}, kill_on_call)
main(["ingest", sys.argv[1], "--source", "killed"])
"""


@pytest.mark.parametrize(
    "target, when, kept",
    [("fsync", 3, False), ("replace", 2, True), ("replace", 3, True)],
    ids=["staging-the-record", "between-the-csv-renames", "before-the-record-rename"],
)
def test_a_kill_during_ingest_loses_no_row_and_leaves_no_half_record(project, tmp_path, target, when, kept):
    """Killed while staging: nothing changes. Killed after the commit point: the next ingest finishes it."""
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_bytes(csv_text(shifted_batch(40, 11)))
    second.write_bytes(csv_text(shifted_batch(40, 12)))
    before = raw_state(project)
    killed = run(
        [sys.executable, "-c", KILLED_WHILE.format(target=target, when=when), str(first)], project, check=False
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if not kept:
        assert raw_state(project) == before
    rakuten(project, "ingest", str(second), "--source", "next")
    batches = read_batches(project / "data/raw")
    assert [b.source for b in batches] == (["killed", "next"] if kept else ["next"])
    x = pd.read_csv(project / "data/raw" / X_FILE, index_col=0, keep_default_na=False)
    y = pd.read_csv(project / "data/raw" / Y_FILE, index_col=0)
    assert x.index.equals(y.index) and len(x) == 1500 + 40 * len(batches)
    assert [(b.first_index, b.last_index) for b in batches] == [
        (1500 + 40 * i, 1539 + 40 * i) for i in range(len(batches))
    ]
    assert "modified" not in run(["dvc", "status", "data/raw.dvc"], project).stdout


@pytest.mark.slow
def test_the_retrain_gate_gets_the_held_out_rows_of_each_source(project: Path, tmp_path: Path):
    """Production built before two batches arrive; the candidate after: the gate's slices name each source."""
    from mlops_rakuten.monitoring.reference import TEST_SPLIT, Built, lock_outs
    from mlops_rakuten.monitoring.retrain import FROZEN, NEW, evaluation_products

    run(["dvc", "repro", "-q"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "production"], project)
    production = Built("", "HEAD", lock_outs((project / "dvc.lock").read_text()))
    frozen = set(pd.read_csv(project / TEST_SPLIT, index_col=0).index)
    for source, seed in (("shop-b", 21), ("shop-c", 22)):
        path = tmp_path / f"{source}.csv"
        path.write_bytes(csv_text(shifted_batch(200, seed)))
        rakuten(project, "ingest", str(path), "--source", source)
    run(["dvc", "repro", "-q"], project)
    candidate = Built("", None, lock_outs((project / "dvc.lock").read_text()))
    named = {n.name: n.products for n in evaluation_products(project, production, candidate, frozen)}
    assert list(named) == [FROZEN, NEW, "held out, source shop-b", "held out, source shop-c", ALL_BATCHES]
    held = held_out_rows(range(1500, 1900), read_batches(project / "data/raw"))
    expected = {1500 + i for i in np.flatnonzero(held)}
    assert set(named[ALL_BATCHES].index) == expected  # every held-out row, in the candidate's test split
    assert set(named["held out, source shop-b"].index) == {i for i in expected if i < 1700}
    train = pd.read_csv(project / "data/split/train.csv", index_col=0)
    assert not expected & set(train.index)
