"""Bad input: a one-line error naming the file/column/key, exit 1, no output written."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, reproduced_project, run

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
X_HEADER = ",designation,description,productid,imageid\n"


def write_raw(folder: Path, x_rows: list[str], y_rows: list[str], x_header: str = X_HEADER) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "X.csv").write_text(x_header + "".join(r + "\n" for r in x_rows), encoding="utf-8")
    (folder / "Y.csv").write_text(",prdtypecode\n" + "".join(r + "\n" for r in y_rows), encoding="utf-8")
    (folder / "params.yaml").write_text(yaml.safe_dump(PARAMS))


def stage(name: str, folder: Path, *args: str):
    return run(
        [sys.executable, "-m", f"mlops_rakuten.stages.{name}", "--params", "params.yaml", *args], folder, check=False
    )


def assert_clean_failure(result, folder: Path, *needles: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]
    leftovers = [p.name for p in folder.rglob("*") if p.name.startswith(("out", ".out"))]
    assert leftovers == []


GOOD_X = ["0,Livre ancien,,1,2", "1,Piscine hors sol,<p>bâche</p>,3,4"]
GOOD_Y = ["0,10", "1,2583"]


@pytest.mark.parametrize(
    "x_rows, y_rows, x_header, needles",
    [
        (GOOD_X, ["0,10", "1,abc"], X_HEADER, ["Y.csv", "prdtypecode at index 1 is 'abc'"]),
        (GOOD_X, ["0,10", "1,"], X_HEADER, ["Y.csv", "prdtypecode at index 1"]),
        (GOOD_X, ["0,10", "1,12.5"], X_HEADER, ["Y.csv", "expected an integer"]),
        (GOOD_X, ["0,10", "7,2583"], X_HEADER, ["X.csv", "Y.csv", "index 1 only in X.csv"]),
        (GOOD_X, GOOD_Y, ",title,description,productid,imageid\n", ["X.csv", "missing column 'designation'"]),
    ],
    ids=["label-not-integer", "label-missing", "label-float", "index-mismatch", "column-misnamed"],
)
def test_ingest_rejects_bad_challenge_files(tmp_path, x_rows, y_rows, x_header, needles):
    write_raw(tmp_path, x_rows, y_rows, x_header)
    result = stage("ingest", tmp_path, "--x", "X.csv", "--y", "Y.csv", "--out", "out.csv")
    assert_clean_failure(result, tmp_path, *needles)


def test_ingest_names_a_missing_file(tmp_path):
    write_raw(tmp_path, GOOD_X, GOOD_Y)
    result = stage("ingest", tmp_path, "--x", "X.csv", "--y", "nope.csv", "--out", "out.csv")
    assert_clean_failure(result, tmp_path, "nope.csv: file not found")


def test_ingest_rejects_non_utf8_bytes(tmp_path):
    write_raw(tmp_path, GOOD_X, GOOD_Y)
    (tmp_path / "X.csv").write_bytes(X_HEADER.encode() + "0,Livre à lire,,1,2\n".encode("latin-1"))
    result = stage("ingest", tmp_path, "--x", "X.csv", "--y", "Y.csv", "--out", "out.csv")
    assert_clean_failure(result, tmp_path, "X.csv: not UTF-8")


def test_ingest_accepts_good_files(tmp_path):
    write_raw(tmp_path, GOOD_X, GOOD_Y)
    result = stage("ingest", tmp_path, "--x", "X.csv", "--y", "Y.csv", "--out", "out.csv")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.csv").read_text().splitlines()[0] == ",designation,description,prdtypecode"


def test_preprocess_refuses_an_empty_result(tmp_path):
    write_raw(tmp_path, [], [])
    (tmp_path / "in.csv").write_text(",designation,description,prdtypecode\n0,<br/>,,10\n1, ,&nbsp;,40\n")
    result = stage("preprocess", tmp_path, "--input", "in.csv", "--out", "out.csv")
    assert_clean_failure(result, tmp_path, "in.csv: no rows left after cleaning", "no usable text")


def test_split_refuses_a_class_too_small_to_stratify(tmp_path):
    write_raw(tmp_path, [], [])
    rows = "".join(f"{i},livre {i},,10\n" for i in range(20)) + "20,console,,60\n"
    (tmp_path / "in.csv").write_text(",designation,description,prdtypecode\n" + rows)
    result = stage("split", tmp_path, "--input", "in.csv", "--train", "out-train.csv", "--test", "out-test.csv")
    assert_clean_failure(result, tmp_path, "in.csv: class 60 has 1 row(s)")


def test_a_params_key_of_the_wrong_type_is_named(tmp_path):
    write_raw(tmp_path, GOOD_X, GOOD_Y)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**PARAMS, "ingest": {"fraction": "half", "seed": 1}}))
    result = stage("ingest", tmp_path, "--x", "X.csv", "--y", "Y.csv", "--out", "out.csv")
    assert_clean_failure(result, tmp_path, "params.yaml: ingest.fraction = half, expected a number")


@pytest.mark.parametrize("empty", ["X.csv", "Y.csv"])
def test_ingest_rejects_a_header_with_no_rows(tmp_path, empty):
    write_raw(tmp_path, GOOD_X, GOOD_Y)
    header = {"X.csv": X_HEADER, "Y.csv": ",prdtypecode\n"}[empty]
    (tmp_path / empty).write_text(header)
    result = stage("ingest", tmp_path, "--x", "X.csv", "--y", "Y.csv", "--out", "out.csv")
    assert_clean_failure(result, tmp_path, f"{empty}: a header and no rows")


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory) -> Path:
    """A demo project after `dvc repro`, committed; each test below works on its own copy."""
    return reproduced_project(tmp_path_factory.mktemp("bad-input") / "project")


def outputs_and_lock(project: Path) -> dict[str, str]:
    names = [
        "dvc.lock",
        "data/raw.dvc",
        "data/interim/products.csv",
        "models/model.joblib",
        "models/holdout_model.joblib",
        "metrics/metrics.json",
    ]
    return {name: hashlib.sha256((project / name).read_bytes()).hexdigest() for name in names}


@pytest.mark.slow
def test_a_bad_param_stops_dvc_repro_before_any_output_is_removed(reproduced: Path, tmp_path: Path):
    project = Path(shutil.copytree(reproduced, tmp_path / "project", symlinks=True))
    before = outputs_and_lock(project)
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("  C: ", "  C: -", 1))
    result = run(["dvc", "repro"], project, check=False)
    assert result.returncode != 0
    assert "error: params.yaml: model.C = -0.5, expected a number in (0, " in result.stderr
    assert "failed to reproduce 'check_params'" in result.stderr
    assert "Running stage 'train'" not in result.stdout
    assert outputs_and_lock(project) == before  # the models are still there, unchanged


def test_an_empty_raw_dataset_stops_at_ingest_and_leaves_dvc_lock_untouched(reproduced: Path, tmp_path: Path):
    project = Path(shutil.copytree(reproduced, tmp_path / "project", symlinks=True))
    lock = (project / "dvc.lock").read_bytes()
    for name, header in (("X_train_update.csv", X_HEADER), ("Y_train_CVw08PX.csv", ",prdtypecode\n")):
        (project / "data/raw" / name).write_text(header)
    run(["dvc", "add", "-q", "data/raw"], project)
    result = run(["dvc", "repro"], project, check=False)
    assert result.returncode != 0
    assert "error: data/raw/X_train_update.csv: a header and no rows (expected at least one product)" in result.stderr
    assert "failed to reproduce 'ingest'" in result.stderr
    assert "Running stage 'preprocess'" not in result.stdout
    assert (project / "dvc.lock").read_bytes() == lock


def test_check_params_names_a_misspelt_key_and_the_keys_that_exist(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**PARAMS, "model": {**PARAMS["model"], "Cx": 1}}))
    result = stage("check_params", tmp_path, "--out", "out.txt")
    assert result.returncode == 1
    error, *hint = result.stderr.strip().splitlines()
    assert error == (
        "error: params.yaml: unknown key model.Cx (did you mean model.C? "
        "expected one of C, class_weight, max_iter, n_jobs, refit_max_rows, refit_on_all, seed, "
        "solver or tol)"
    )
    assert hint == ["No other stage ran and no output was removed. Fix params.yaml and run again."]  # not in git
    assert not (tmp_path / "out.txt").exists()


def test_check_params_names_an_unknown_section(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**PARAMS, "modle": {"C": 1}}))
    result = stage("check_params", tmp_path, "--out", "out.txt")
    assert result.returncode == 1
    assert result.stderr.startswith(
        "error: params.yaml: unknown section modle (did you mean model? expected one of "
        "ingest, preprocess, split, featurize or model)\n"
    )
