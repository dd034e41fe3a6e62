"""`rakuten predictions replay`: the log a server would have written for a file of products at a rate."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from mlops_rakuten.cli import main
from mlops_rakuten.core.predict import load_model, predict_top_k
from mlops_rakuten.monitoring.log_files import read_window
from mlops_rakuten.monitoring.reference import MODEL_PATH
from mlops_rakuten.ops.dvcfiles import file_md5
from test_drift_signals import model  # noqa: F401  (the module's fixture: a small trained project)

PRODUCTS = [
    ("<b>Piscine</b> hors sol tubulaire", "Bâche <br/>renforcée", "2583"),
    ("Livre de cuisine", "", "2705"),
    ("<br>", "", "2583"),  # no text once HTML is stripped: /predict refuses it, so it is not logged
    ("Coussin velours", "Housse &amp; garnissage", ""),
]


def write_csv(path: Path, rows, header=("designation", "description", "prdtypecode")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run(args: list[str], capsys) -> tuple[int | str | None, str]:
    try:
        main(args)
        code: int | str | None = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def test_replay_logs_what_the_server_would_have_at_the_rate(model, tmp_path, capsys):  # noqa: F811
    pipeline, project = model
    source = write_csv(tmp_path / "products.csv", PRODUCTS)
    code, err = run(
        [
            "predictions", "replay", str(source), "--log-dir", str(tmp_path / "log"),
            "--start", "2026-01-05T10:00:00", "--per-hour", "120", "--model", str(project / MODEL_PATH),
        ],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    md5 = file_md5(project / MODEL_PATH)
    assert f"wrote 3 prediction(s) of model {md5}" in err and "1 without text left out" in err, err
    (log,) = (tmp_path / "log").glob("predictions-*.jsonl")
    rows = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    # One every 30 seconds from --start, the refused product keeping its slot.
    assert [r["time"] for r in rows] == [
        "2026-01-05T10:00:00.000+00:00",
        "2026-01-05T10:00:30.000+00:00",
        "2026-01-05T10:01:30.000+00:00",
    ]
    assert all(set(r) == {"time", "model_version", "prdtypecode", "score", "top_k", "text_chars",
                          "designation", "description"} for r in rows)  # fmt: skip
    assert {r["model_version"] for r in rows} == {md5}
    answered = pd.DataFrame([p[:2] for p in PRODUCTS[:2] + PRODUCTS[3:]], columns=["designation", "description"])
    codes, scores = predict_top_k(load_model(project / MODEL_PATH), answered, 3)
    assert [r["prdtypecode"] for r in rows] == codes[:, 0].tolist()
    assert [[c for c, _ in r["top_k"]] for r in rows] == codes.tolist()
    assert [r["score"] for r in rows] == [round(float(s), 6) for s in scores[:, 0]]
    # Cleaned as the server logs it: no HTML, entities decoded.
    assert (rows[0]["designation"], rows[0]["description"]) == ("Piscine hors sol tubulaire", "Bâche renforcée")
    assert rows[2]["description"] == "Housse & garnissage"
    assert rows[0]["text_chars"] == len("Piscine hors sol tubulaire Bâche renforcée")
    # drift reads it back whole.
    window = read_window(tmp_path / "log", datetime(2026, 1, 5, 10, tzinfo=timezone.utc))
    assert len(window.rows) == 3 and window.unreadable_lines == 0


def test_the_label_column_is_optional(model, tmp_path, capsys):  # noqa: F811
    _, project = model
    source = write_csv(tmp_path / "p.csv", [p[:2] for p in PRODUCTS], header=("designation", "description"))
    start = datetime.now(timezone.utc) - timedelta(minutes=10)
    code, err = run(
        ["predictions", "replay", str(source), "--log-dir", str(tmp_path / "log"), "--start", "10m",
         "--per-hour", "3600", "--model", str(project / MODEL_PATH)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    rows = read_window(tmp_path / "log", start - timedelta(seconds=5)).rows
    assert len(rows) == 3 and rows[-1]["time"] < (start + timedelta(seconds=10)).isoformat()


@pytest.mark.parametrize(
    "header, rows, args, message",
    [
        (("title", "description"), [("a", "b")], [], "p.csv: missing column 'designation'"),
        (("designation", "description", "price"), [("a", "b", "3")], [], "p.csv: unexpected column 'price'"),
        (("designation", "description"), [], [], "p.csv: no rows"),
        (("designation", "description"), [("a b", "")], ["--per-hour", "0"], "--per-hour 0.0: expected a positive"),
        (("designation", "description"), [("a b", "")], ["--start", "yesterday"], "--start 'yesterday': expected"),
    ],
)
def test_bad_input_is_one_error_line_and_no_log_file(model, tmp_path, capsys, header, rows, args, message):  # noqa: F811
    _, project = model
    source = write_csv(tmp_path / "p.csv", rows, header=header)
    options = {"--start": "1h", "--per-hour": "60", **dict(zip(args[::2], args[1::2], strict=True))}
    code, err = run(
        ["predictions", "replay", str(source), "--log-dir", str(tmp_path / "log"), "--model", str(project / MODEL_PATH)]
        + [item for pair in options.items() for item in pair],
        capsys,
    )
    assert code == 1 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "log").exists() or not any((tmp_path / "log").iterdir())
