"""The two drift windows end to end on logs written by `rakuten predictions replay`: which products each
window holds, rows older than --since, and products without a word token."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from mlops_rakuten.cli import main
from mlops_rakuten.core.demo_data import generate
from mlops_rakuten.monitoring.drift import SHORT_PRODUCTS
from mlops_rakuten.monitoring.reference import MODEL_PATH
from test_drift_signals import model  # noqa: F401  (the module's fixture: a small trained project)


def products_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["designation", "description"])
        writer.writerows(rows)
    return path


def demo(n: int, seed: int) -> list[tuple[str, str]]:
    return [(x[1], x[2]) for x in generate(max(n, 60), seed)[0][:n]]


def replayed(project: Path, folder: Path, rows, start: datetime, per_hour: float) -> None:
    source = products_csv(folder.parent / f"{folder.name}-{start.timestamp():.0f}.csv", rows)
    main(["predictions", "replay", str(source), "--log-dir", str(folder), "--start", start.isoformat(),
          "--per-hour", str(per_hour), "--model", str(project / MODEL_PATH)])  # fmt: skip


def drift(project: Path, folder: Path, since: str, monkeypatch, capsys, *extra: str) -> str:
    monkeypatch.chdir(project)
    capsys.readouterr()
    main(["drift", "--since", since, "--log-dir", str(folder), "--out", str(folder.parent / "drift.html"), *extra])
    return capsys.readouterr().out


def windows(project, folder, since, monkeypatch, capsys) -> dict[str, dict]:
    out = drift(project, folder, since, monkeypatch, capsys, "--json")
    return {w["window"]: w for w in json.loads(out)["windows"]}


def test_the_short_window_is_the_last_hour_at_high_traffic_and_the_last_products_at_low(
    model,  # noqa: F811
    tmp_path,
    monkeypatch,
    capsys,  # noqa: F811
):
    _, project = model
    now = datetime.now(timezone.utc)
    busy = tmp_path / "busy"
    replayed(project, busy, demo(2_500, 11), now - timedelta(hours=1.25), 2_000)  # the last 2,000 in the hour
    found = windows(project, busy, "1d", monkeypatch, capsys)
    assert found["day"]["products"] == 2_500 and found["short"]["products"] in (2_000, 2_001)
    first, last = (datetime.fromisoformat(found["short"][k]) for k in ("first", "last"))
    assert timedelta(minutes=59) < last - first <= timedelta(hours=1)
    assert found["short"]["tested"] and found["short"]["signals"] != found["day"]["signals"]
    quiet = tmp_path / "quiet"
    replayed(project, quiet, demo(1_200, 12), now - timedelta(hours=20), 60)  # one a minute: 60 in the hour
    found = windows(project, quiet, "1d", monkeypatch, capsys)
    assert (found["day"]["products"], found["short"]["products"]) == (1_200, SHORT_PRODUCTS)
    assert datetime.fromisoformat(found["short"]["first"]) < now - timedelta(hours=16)
    text = drift(project, quiet, "1d", monkeypatch, capsys)
    assert text.startswith("SHORT WINDOW: 1000 products, ") and "\n\nDAY WINDOW: 1200 products, " in text
    assert text.count("verdict") == 2


def test_rows_older_than_since_next_to_current_ones_are_left_out(model, tmp_path, monkeypatch, capsys):  # noqa: F811
    _, project = model
    now = datetime.now(timezone.utc)
    old, new, folder = tmp_path / "old", tmp_path / "new", tmp_path / "log"
    replayed(project, old, demo(300, 13), now - timedelta(days=3), 600)  # half an hour, three days ago
    replayed(project, new, demo(150, 14), now - timedelta(minutes=30), 300)
    folder.mkdir()
    (one,) = old.glob("*.jsonl")
    (two,) = new.glob("*.jsonl")
    (folder / "predictions-mixed.jsonl").write_text(one.read_text() + two.read_text())  # one file, written now
    found = windows(project, folder, "2h", monkeypatch, capsys)
    assert found["day"]["products"] == found["short"]["products"] == 150
    assert datetime.fromisoformat(found["day"]["first"]) >= now - timedelta(minutes=31)
    assert windows(project, folder, "4d", monkeypatch, capsys)["day"]["products"] == 450


def test_products_without_a_word_token_count_as_all_unknown(model, tmp_path, monkeypatch, capsys):  # noqa: F811
    """Symbols and one-letter words: text, but no word token the vectorizer keeps. Counted as known (the
    division's 0 / 0 read as 0), such a feed would show no unknown words at all; counted as unknown, it is
    the strongest unknown-majority signal there is."""
    _, project = model
    folder = tmp_path / "log"
    rows = [("!!! ???", "- / -"), ("* * *", ""), ("x y z", "+ + +")] * 50
    replayed(project, folder, rows, datetime.now(timezone.utc) - timedelta(minutes=20), 600)
    found = windows(project, folder, "1h", monkeypatch, capsys)["short"]
    assert found["products"] == 150
    assert found["means"]["unknown_share"]["window"] == 1.0
    majority = found["signals"]["unknown_majority"]
    assert majority["window"] == 1.0 and majority["effect"] > 0.9 and majority["alert"] and majority["page"]
