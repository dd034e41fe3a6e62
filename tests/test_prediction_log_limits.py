"""The prediction log against one greedy user and several replicas: a budget of bytes a minute per
user, long texts cut, private files whatever the umask, and no replica deleting another's open file."""

from __future__ import annotations

import dataclasses
import os
import stat
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from prometheus_client import CollectorRegistry

from mlops_rakuten.monitoring.log_budget import RECORD_OVERHEAD, TEXT_MAX_CHARS, UserBudget, record_bytes
from mlops_rakuten.monitoring.log_folder import file_name, prune
from mlops_rakuten.monitoring.prediction_log import LogSettings, PredictionLog
from test_prediction_log import logged_rows, login, metric, serve

from serve_support import make_settings, shared_trained_project, stop, wait_until

MODEL = SimpleNamespace(md5="0" * 32, pipeline=None)  # text mode reads only the md5


def test_a_users_budget_holds_exactly_a_minutes_bytes_and_refills_by_the_second():
    now = [0.0]
    budget = UserBudget(6000, clock=lambda: now[0])
    assert budget.spend("bob", 6000)  # exactly the budget
    assert not budget.spend("bob", 1)  # one byte over: refused, nothing taken
    assert budget.spend("alice", 6000)  # each user has their own
    now[0] = 0.5  # 6000 bytes a minute: 50 back in half a second
    assert budget.spend("bob", 50)
    assert not budget.spend("bob", 1)
    now[0] = 1000.0
    assert not budget.spend("bob", 6001)  # never more than a minute's worth at once
    assert budget.spend("bob", 6000)


def test_a_record_counts_its_text_cut_to_the_cap_in_utf8_bytes():
    assert record_bytes("é", "") == 2 + RECORD_OVERHEAD
    assert record_bytes("x" * 20_000, "y" * 3) == TEXT_MAX_CHARS + 3 + RECORD_OVERHEAD


def test_what_is_over_a_users_budget_is_counted_not_written_and_long_texts_are_cut(tmp_path):
    long = "piscine " * 2_500
    cost = record_bytes("Piscine", long)
    registry = CollectorRegistry()
    log = PredictionLog(LogSettings(folder=tmp_path, user_bytes_per_minute=2 * cost), registry)
    for _ in range(3):
        log.append("Piscine", long, [10, 40], [0.9, 0.1], MODEL, user="bob")  # the third is over
    log.append("Carte Pokémon", "", [10, 40], [0.9, 0.1], MODEL, user="alice")
    log.close()
    rows = logged_rows(tmp_path)
    assert [row["designation"] for row in rows] == ["Piscine", "Piscine", "Carte Pokémon"]
    assert registry.get_sample_value("rakuten_prediction_log_dropped_total", {"reason": "user_budget"}) == 1
    cut = rows[0]
    assert len(cut["description"]) == TEXT_MAX_CHARS and cut["truncated"] is True
    assert cut["text_chars"] > 19_000  # the whole text's length, as the model saw it
    assert "truncated" not in rows[2]


def test_a_folder_and_files_left_open_by_an_older_version_are_narrowed(tmp_path):
    folder = tmp_path / "predictions"
    folder.mkdir(mode=0o755)
    older = folder / file_name(time.time() - 60, "host-a-1", 1)
    older.write_text("{}\n")
    os.chmod(folder, 0o755)
    os.chmod(older, 0o644)
    log = PredictionLog(LogSettings(folder=folder), CollectorRegistry())
    log.append("Piscine", "", [10, 40], [0.9, 0.1], MODEL, user="bob")
    log.close()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(path.stat().st_mode) for path in folder.iterdir()} == {0o600} and len(
        list(folder.iterdir())
    ) == 2


def test_pruning_spares_other_writers_files_they_may_still_append_to(tmp_path):
    now, day = time.time(), 86400.0
    names = {
        "own closed": file_name(now - 2 * day, "host-a-1", 1),
        "own open": file_name(now - 2 * day, "host-a-1", 2),
        "other, old": file_name(now - 2 * day, "host-b-7", 1),
        "other, open": file_name(now - day - 30, "host-b-7", 2),  # past its rotation age, within the grace
        "other, young": file_name(now - 3600, "host-b-7", 3),
    }
    for i, name in enumerate(names.values()):
        (tmp_path / name).write_bytes(b"x" * 1000)
        os.utime(tmp_path / name, (now - 3 * day + i, now - 3 * day + i))  # all past retention, oldest first
    deleted = prune(
        tmp_path,
        retention_seconds=day,
        max_total_bytes=0,
        rotate_seconds=day,
        own_writer="host-a-1",
        open_file=tmp_path / names["own open"],
        now=now,
    )
    kept = {what for what, name in names.items() if (tmp_path / name).exists()}
    # Another writer rotates before appending to a file it opened over rotate_seconds ago (plus a minute's grace).
    assert kept == {"own open", "other, open", "other, young"}, deleted


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    root = tmp_path_factory.mktemp("log-limits")
    shared = make_settings(shared_trained_project(tmp_path_factory), root / "secrets")
    return dataclasses.replace(shared, state_dir=root / "state")


@pytest.mark.server
def test_one_user_cannot_flush_the_log_and_its_files_are_private_under_umask_000(settings, tmp_path):
    folder = tmp_path / "predictions"
    budget = 0.01  # MiB a minute: 10,485 bytes, room for one product of 20,000 characters (5,000 logged)
    process, base = serve(
        settings,
        tmp_path / "server.log",
        umask=0,
        RAKUTEN_PREDICTION_LOG_DIR=str(folder),
        RAKUTEN_PREDICTION_LOG_USER_MB_PER_MINUTE=str(budget),
    )
    try:
        greedy = {"Authorization": f"Bearer {login(base, 'bob')}"}
        batch = [{"designation": f"Piscine {i}", "description": "piscine " * 2_500} for i in range(64)]
        start = time.monotonic()
        for _ in range(2):
            assert httpx.post(f"{base}/predict", json=batch, headers=greedy, timeout=60).status_code == 200
        seconds = time.monotonic() - start
        other = {"Authorization": f"Bearer {login(base, 'alice')}"}
        answer = httpx.post(f"{base}/predict", json=[{"designation": "Carte Pokémon"}] * 3, headers=other)
        assert answer.status_code == 200  # another user's products are logged still
        rows = wait_until(lambda: [r for r in logged_rows(folder) if r["designation"] == "Carte Pokémon"], "alice")
        assert len(rows) == 3
        greedy_rows = [r for r in logged_rows(folder) if r["designation"].startswith("Piscine")]
        # A minute's budget at first, refilled meanwhile at a sixtieth of it a second.
        allowed = budget * 2**20 * (1 + seconds / 60) // record_bytes("Piscine 10", batch[0]["description"])
        assert 1 <= len(greedy_rows) <= allowed
        assert metric(base, 'rakuten_prediction_log_dropped_total{reason="user_budget"}') == 128 - len(greedy_rows)
        assert all(r["truncated"] and len(r["description"]) == TEXT_MAX_CHARS for r in greedy_rows)
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        files = list(folder.iterdir())
        assert files and {stat.S_IMODE(path.stat().st_mode) for path in files} == {0o600}
    finally:
        stop(process)
    assert "over its budget" in (tmp_path / "server.log").read_text()


@pytest.mark.server
def test_a_replica_pruning_never_deletes_another_replicas_open_file(settings, tmp_path):
    folder = tmp_path / "predictions"
    tiny = {  # a file closed past 4 KiB (about 10 rows), the oldest deleted past 10 KiB in all
        "RAKUTEN_PREDICTION_LOG_DIR": str(folder),
        "RAKUTEN_PREDICTION_LOG_ROTATE_MB": "0.004",
        "RAKUTEN_PREDICTION_LOG_MAX_MB": "0.01",
    }
    quiet, quiet_url = serve(settings, tmp_path / "quiet.log", umask=0, RAKUTEN_STATE_DIR=str(tmp_path / "q"), **tiny)
    busy, busy_url = serve(settings, tmp_path / "busy.log", umask=0, RAKUTEN_STATE_DIR=str(tmp_path / "b"), **tiny)
    try:
        quiet_headers = {"Authorization": f"Bearer {login(quiet_url, 'bob')}"}
        busy_headers = {"Authorization": f"Bearer {login(busy_url, 'bob')}"}

        def quiet_files() -> list[Path]:
            return [path for path in folder.glob("predictions-*.jsonl") if f"-{quiet.pid}-" in path.name]

        httpx.post(f"{quiet_url}/predict", json={"designation": "Premier produit"}, headers=quiet_headers)
        opened = wait_until(quiet_files, "the quiet replica's file")
        for i in range(20):  # about 20 rotations, each pruning down to 10 KiB: the quiet file is the oldest
            products = [{"designation": f"Produit {i}-{j}", "description": "description " * 10} for j in range(10)]
            assert httpx.post(f"{busy_url}/predict", json=products, headers=busy_headers).status_code == 200
        wait_until(lambda: any("Produit 19-9" in p.read_text() for p in folder.glob("*.jsonl")), "the busy rows")
        httpx.post(f"{quiet_url}/predict", json={"designation": "Second produit"}, headers=quiet_headers)
        wait_until(lambda: quiet_files() and "Second produit" in quiet_files()[0].read_text(), "the second row")
        assert quiet_files() == opened and "Premier produit" in opened[0].read_text()
    finally:
        stop(quiet)
        stop(busy)
