"""`rakuten predict` and `rakuten calibration`: both modes, streaming, scores, bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.pipeline import Pipeline

from mlops_rakuten.cli import main
from mlops_rakuten.core import predict
from mlops_rakuten.core.categories import CODES, DEFAULT_TOP_K, category_name
from mlops_rakuten.core.demo_data import write_demo_data
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.features import build_vectorizer
from mlops_rakuten.core.one_vs_rest import fit_linear_svc
from mlops_rakuten.core.paths import X_FILE, Y_FILE

from conftest import ROOT, run

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture(scope="module")
def products(tmp_path_factory) -> pd.DataFrame:
    """1,500 demo products: designation, description, prdtypecode, the challenge's index."""
    folder = tmp_path_factory.mktemp("demo")
    write_demo_data(folder, rows=1500, seed=7)
    x = pd.read_csv(folder / X_FILE, index_col=0, keep_default_na=False, dtype={"designation": str, "description": str})
    y = pd.read_csv(folder / Y_FILE, index_col=0)
    return x[["designation", "description"]].join(y)


@pytest.fixture(scope="module")
def model_path(products, tmp_path_factory) -> Path:
    """A model fitted by the real featurize/train functions with the repo's params, saved like train does."""
    extractor = build_vectorizer({**PARAMS["featurize"], "n_jobs": 1})
    x = extractor.fit_transform(products)
    classifier = fit_linear_svc(x, products["prdtypecode"].to_numpy(), PARAMS["model"])
    model = Pipeline([("features", extractor), ("classifier", classifier)])
    path = tmp_path_factory.mktemp("model") / "model.joblib"
    joblib.dump(model, path)
    return path


@pytest.fixture(scope="module")
def model(model_path) -> Pipeline:
    return joblib.load(model_path)


def rakuten(folder: Path, *args: str):
    return run([sys.executable, "-m", "mlops_rakuten.cli", *args], folder, check=False)


def rakuten_in_process(folder: Path, monkeypatch, capsys, *args: str) -> tuple[int | str | None, str]:
    """The same ``main`` as the ``rakuten`` script, without paying a fresh interpreter per bad-input case."""
    monkeypatch.chdir(folder)
    try:
        main(list(args))
        code: int | str | None = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def write_input(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=True, lineterminator="\n")
    return path


def assert_one_line_error(result, *needles: str) -> None:
    code, stderr = (result.returncode, result.stderr) if hasattr(result, "returncode") else result
    assert code == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


# --- scores and top-k ---------------------------------------------------------------------------


def test_top_k_is_ordered_agrees_with_predict_and_scores_sum_to_one(model, products):
    frame = products.iloc[:50][["designation", "description"]]
    codes, scores = predict.predict_top_k(model, frame, len(CODES))
    assert codes.dtype.kind == "i" and codes.shape == scores.shape == (50, len(CODES))
    assert (codes[:, 0] == model.predict(frame)).all()
    assert (np.diff(scores, axis=1) <= 0).all()
    assert np.allclose(scores.sum(axis=1), 1.0)
    assert all(sorted(row) == list(CODES) for row in codes)  # every class once per row
    top3_codes, top3_scores = predict.predict_top_k(model, frame, 3)
    assert (top3_codes == codes[:, :3]).all() and np.allclose(top3_scores, scores[:, :3])


def test_score_is_a_tempered_softmax_of_the_decision_values():
    decision = np.array([[1.0, 0.0, -1.0]])
    expected = np.exp(decision[0] / predict.TEMPERATURE) / np.exp(decision[0] / predict.TEMPERATURE).sum()
    assert np.allclose(predict.softmax_scores(decision), expected)
    # Large margins must not overflow.
    assert np.isfinite(predict.softmax_scores(np.array([[500.0, -500.0]]))).all()


def test_top_k_bounds_are_checked(model, products):
    frame = products.iloc[:2]
    for k in (0, len(CODES) + 1):
        with pytest.raises(InputError, match="top-k must be between 1 and 27"):
            predict.predict_top_k(model, frame, k)


def test_as_records_names_the_category():
    records = predict.as_records(np.array([2583, 10]), np.array([0.75, 0.25]))
    assert records == [
        {"prdtypecode": 2583, "category": category_name(2583), "score": 0.75},
        {"prdtypecode": 10, "category": category_name(10), "score": 0.25},
    ]
    assert all(type(r["prdtypecode"]) is int and type(r["score"]) is float for r in records)


def test_help_states_the_temperature_the_code_uses(tmp_path):
    result = rakuten(tmp_path, "predict", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert f"softmax(decision values / {predict.TEMPERATURE})" in text
    assert f"(default {predict.DEFAULT_CHUNK_SIZE})" in text


# --- --text mode --------------------------------------------------------------------------------


def test_text_mode_prints_top_k_records(tmp_path, model_path, model, products):
    row = products.iloc[3]
    result = rakuten(
        tmp_path,
        "predict",
        "--text",
        row["designation"],
        "--description",
        row["description"],
        "--top-k",
        "3",
        "--model",
        str(model_path),
    )
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert [set(r) for r in records] == [{"prdtypecode", "category", "score"}] * 3
    expected = model.predict(pd.DataFrame([row[["designation", "description"]]]))[0]
    assert records[0]["prdtypecode"] == expected
    assert all(r["category"] == category_name(r["prdtypecode"]) for r in records)
    scores = [r["score"] for r in records]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-9


def test_text_mode_without_description_and_default_model_path(tmp_path, model_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.joblib").write_bytes(model_path.read_bytes())
    result = rakuten(tmp_path, "predict", "--text", "Piscine hors sol tubulaire")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == DEFAULT_TOP_K  # the API's default too


def test_text_mode_rejects_text_that_cleans_to_nothing(tmp_path, model_path):
    assert_one_line_error(
        rakuten(tmp_path, "predict", "--text", "<p> </p>", "--model", str(model_path)), "--text", "no text"
    )


# --- --input mode -------------------------------------------------------------------------------


def test_csv_mode_keeps_the_index_and_writes_top_k(tmp_path, model_path, model, products):
    frame = products.iloc[:40][["designation", "description"]].assign(productid="x", imageid=1)
    frame.index = [f"p{i * 3}" for i in range(40)]  # non-default index values must come back as given
    source = write_input(tmp_path / "in.csv", frame)
    result = rakuten(
        tmp_path, "predict", "--input", "in.csv", "--output", "out.csv", "--top-k", "3", "--model", str(model_path)
    )
    assert result.returncode == 0, result.stderr
    out = pd.read_csv(tmp_path / "out.csv", index_col=0)
    assert list(out.columns) == [
        "prdtypecode",
        "category",
        "top1",
        "category1",
        "score1",
        "top2",
        "category2",
        "score2",
        "top3",
        "category3",
        "score3",
    ]
    assert list(out.index) == list(frame.index)
    for code, name in (("prdtypecode", "category"), *((f"top{i}", f"category{i}") for i in (1, 2, 3))):
        assert (out[name] == out[code].map(category_name)).all()  # the French name beside each code
    assert (out["prdtypecode"].to_numpy() == model.predict(frame)).all()
    assert (out["prdtypecode"] == out["top1"]).all()
    assert (out["score1"] >= out["score2"]).all() and (out["score2"] >= out["score3"]).all()
    assert ((out[["score1", "score2", "score3"]].sum(axis=1)) <= 1 + 1e-5).all()
    assert source.read_text().startswith(",designation")  # the input really had an unnamed index


def test_csv_mode_top_1_without_index_or_description(tmp_path, model_path, model, products):
    frame = products.iloc[:10][["designation"]]
    frame.to_csv(tmp_path / "in.csv", index=False)
    result = rakuten(
        tmp_path, "predict", "--input", "in.csv", "--output", "out.csv", "--top-k", "1", "--model", str(model_path)
    )
    assert result.returncode == 0, result.stderr
    out = pd.read_csv(tmp_path / "out.csv", index_col=0)
    assert list(out.columns) == ["prdtypecode", "category"] and list(out.index) == list(range(10))
    assert (out["prdtypecode"].to_numpy() == model.predict(frame)).all()


def test_rows_without_text_get_empty_cells(tmp_path, model_path):
    frame = pd.DataFrame(
        {"designation": ["Piscine hors sol", "", "<b></b>", "NA"], "description": ["", "", "&nbsp;", ""]},
        index=[10, 11, 12, 13],
    )
    write_input(tmp_path / "in.csv", frame)
    result = rakuten(
        tmp_path, "predict", "--input", "in.csv", "--output", "out.csv", "--top-k", "2", "--model", str(model_path)
    )
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0] == ",prdtypecode,category,top1,category1,score1,top2,category2,score2"
    assert lines[2] == "11,,,,,,,," and lines[3] == "12,,,,,,,,"
    out = pd.read_csv(tmp_path / "out.csv", index_col=0, keep_default_na=False)
    assert (out.loc[[10, 13]] != "").all(axis=None)
    assert "4 rows (2 without text" in result.stderr  # "NA" is a word, not a missing value


def test_chunk_size_does_not_change_the_output(tmp_path, model_path, products):
    frame = products.iloc[:100][["designation", "description"]].copy()
    frame.iloc[::9, 0] = ""  # empty rows in several chunks
    frame.iloc[::9, 1] = ""
    write_input(tmp_path / "in.csv", frame)
    outputs = []
    for size in ("7", "1000"):
        result = rakuten(
            tmp_path,
            "predict",
            "--input",
            "in.csv",
            "--output",
            f"out{size}.csv",
            "--top-k",
            "4",
            "--chunk-size",
            size,
            "--model",
            str(model_path),
        )
        assert result.returncode == 0, result.stderr
        outputs.append((tmp_path / f"out{size}.csv").read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0].count(b"\n") == 101


class RecordingDecisions:
    """Wraps predict.decision_values: remembers chunk sizes and fails on a chosen call."""

    def __init__(self, fail_on_call: int | None = None):
        self.real, self.fail_on_call = predict.decision_values, fail_on_call
        self.sizes: list[int] = []

    def __call__(self, model, frame):
        self.sizes.append(len(frame))
        if len(self.sizes) == self.fail_on_call:
            raise InputError("boom in a later chunk")
        return self.real(model, frame)


def test_decision_values_equal_the_pipelines_own(model, products):
    frame = products.iloc[:50][["designation", "description"]]
    assert np.allclose(predict.decision_values(model, frame), model.decision_function(frame), atol=1e-6)


def test_csv_is_streamed_one_chunk_at_a_time(tmp_path, monkeypatch, model, products):
    write_input(tmp_path / "in.csv", products.iloc[:95][["designation", "description"]])
    recorder = RecordingDecisions()
    monkeypatch.setattr(predict, "decision_values", recorder)
    assert predict.predict_csv(model, tmp_path / "in.csv", tmp_path / "out.csv", k=2, chunk_size=20) == (95, 0)
    assert recorder.sizes == [20, 20, 20, 20, 15]


def test_failure_in_a_later_chunk_leaves_no_output_and_keeps_an_old_one(tmp_path, monkeypatch, model, products):
    write_input(tmp_path / "in.csv", products.iloc[:95][["designation", "description"]])
    monkeypatch.setattr(predict, "decision_values", RecordingDecisions(fail_on_call=3))
    with pytest.raises(InputError, match="boom"):
        predict.predict_csv(model, tmp_path / "in.csv", tmp_path / "new.csv", k=1, chunk_size=20)
    (tmp_path / "old.csv").write_text("previous results\n")
    recorder = RecordingDecisions(fail_on_call=3)
    monkeypatch.setattr(predict, "decision_values", recorder)
    with pytest.raises(InputError, match="boom"):
        predict.predict_csv(model, tmp_path / "in.csv", tmp_path / "old.csv", k=1, chunk_size=20)
    assert recorder.sizes == [20, 20, 20]  # two chunks had been written before the failure
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "old.csv"]
    assert (tmp_path / "old.csv").read_text() == "previous results\n"


# --- bad input through the CLI: one-line error, exit 1, no output (an old one is kept) ----------


def late_bad_bytes(path: Path, products: pd.DataFrame) -> None:
    """Over 256 KiB of good rows (pandas decodes in blocks, so the error comes chunks later), then Latin-1."""
    rows = products.iloc[:300][["designation", "description"]].assign(description=lambda f: f["description"] * 20)
    rows.to_csv(path, index=True, lineterminator="\n")
    assert path.stat().st_size > 400_000
    with open(path, "ab") as handle:
        handle.write("9999,Caf\xe9 moulu,\n".encode("latin-1"))


def late_bad_row(path: Path, products: pd.DataFrame) -> None:
    products.iloc[:60][["designation", "description"]].to_csv(path, index=True, lineterminator="\n")
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("60,a,b,c,d,e\n")  # too many fields, 60 rows in: a later chunk at --chunk-size 7


BAD_INPUTS = {
    "missing-designation": (
        lambda p, _: p.write_text(",title,description\n0,Livre,\n"),
        ["missing column 'designation'"],
    ),
    "empty-file": (lambda p, _: p.write_bytes(b""), ["empty file"]),
    "header-only": (lambda p, _: p.write_text(",designation,description\n"), ["no rows"]),
    "non-utf8-header": (lambda p, _: p.write_bytes(",d\xe9signation\n0,a\n".encode("latin-1")), ["not UTF-8"]),
    "non-utf8-late": (late_bad_bytes, ["not UTF-8"]),
    "malformed-late-row": (late_bad_row, ["not a valid CSV"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_file(tmp_path, monkeypatch, capsys, model_path, products, case):
    make, needles = BAD_INPUTS[case]
    make(tmp_path / "in.csv", products)
    (tmp_path / "out.csv").write_text("previous results\n")
    result = rakuten_in_process(
        tmp_path,
        monkeypatch,
        capsys,
        "predict",
        "--input",
        "in.csv",
        "--output",
        "out.csv",
        "--chunk-size",
        "7",
        "--model",
        str(model_path),
    )
    assert_one_line_error(result, "in.csv: ", *needles)
    assert (tmp_path / "out.csv").read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]  # no temp file left


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--input", "missing.csv", "--output", "out.csv"], ["missing.csv: file not found"]),
        (["--input", "in.csv"], ["--output is required"]),
        (["--input", "in.csv", "--output", "out.csv", "--description", "x"], ["--description only applies"]),
        (["--text", "Livre", "--output", "out.csv"], ["--output only applies"]),
        (["--input", "in.csv", "--output", "out.csv", "--top-k", "28"], ["top-k must be between 1 and 27"]),
        (["--input", "in.csv", "--output", "out.csv", "--chunk-size", "0"], ["--chunk-size must be at least 1"]),
        (["--text", "Livre", "--model", "nothing.joblib"], ["nothing.joblib: file not found"]),
        (["--text", "Livre", "--model", "in.csv"], ["in.csv: not a saved model"]),
    ],
    ids=[
        "input-missing",
        "no-output",
        "description-with-input",
        "output-with-text",
        "top-k-too-big",
        "chunk-size-zero",
        "model-missing",
        "model-not-a-model",
    ],
)
def test_bad_arguments(tmp_path, monkeypatch, capsys, model_path, args, needles):
    (tmp_path / "in.csv").write_text(",designation\n0,Livre ancien\n")
    if "--model" not in args:
        args = [*args, "--model", str(model_path)]
    assert_one_line_error(rakuten_in_process(tmp_path, monkeypatch, capsys, "predict", *args), *needles)


def test_bad_input_exits_1_in_a_fresh_process(tmp_path, model_path, products):
    late_bad_row(tmp_path / "in.csv", products)
    result = rakuten(
        tmp_path, "predict", "--input", "in.csv", "--output", "out.csv", "--chunk-size", "7", "--model", str(model_path)
    )
    assert_one_line_error(result, "in.csv: not a valid CSV", "Expected 3 fields in line 62, saw 6")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_a_pickle_that_is_not_a_pipeline_is_refused(tmp_path):
    joblib.dump({"not": "a model"}, tmp_path / "dict.joblib")
    with pytest.raises(InputError, match="dict.joblib: not a saved model .*got dict"):
        predict.load_model(tmp_path / "dict.joblib")


# --- calibration --------------------------------------------------------------------------------


def test_expected_calibration_error():
    # Bin 0.9: 2 of 2 right (gap 0.1); bin 0.5: 1 of 2 right (gap 0). Weighted: 0.5 * 0.1.
    confidence = np.array([0.9, 0.9, 0.5, 0.5])
    correct = np.array([True, True, True, False])
    assert predict.expected_calibration_error(confidence, correct) == pytest.approx(0.05)
    assert predict.expected_calibration_error(np.array([1.0]), np.array([True])) == pytest.approx(0.0)


def test_calibration_command_reports_every_temperature(tmp_path, model_path, model, products):
    test = products.iloc[:200]
    test.to_csv(tmp_path / "test.csv", lineterminator="\n")
    result = rakuten(tmp_path, "calibration", "--input", "test.csv", "--model", str(model_path))
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[2:]]
    assert [float(r[0]) for r in rows] == list(predict.CALIBRATION_TEMPERATURES)
    accuracy = (model.predict(test) == test["prdtypecode"].to_numpy()).mean()
    assert all(float(r[1]) == pytest.approx(accuracy, abs=1e-3) for r in rows)
    mean_top1 = [float(r[2]) for r in rows]
    assert mean_top1 == sorted(mean_top1, reverse=True)  # hotter softmax, lower confidence
