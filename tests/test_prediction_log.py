"""The prediction log, for real: a served model logs what it answered, the log exports to /ingest's
format and back in, a full disk never fails a prediction, and files rotate and expire as documented."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from prometheus_client import CollectorRegistry

from mlops_rakuten.core.errors import InputError
from mlops_rakuten.monitoring.log_files import read_window, since_time
from mlops_rakuten.monitoring.prediction_log import LogSettings, PredictionLog

from conftest import needs, unavailable
from serve_support import PASSWORDS, build_project, free_port, make_settings, server_env, stop, wait_until

RAKUTEN = str(Path(sys.executable).parent / "rakuten")
PRODUCTS = [
    {"designation": "Piscine tubulaire Intex 3 m", "description": "<p>Avec pompe &amp; bâche</p>"},
    {"designation": "Carte Pokémon Pikachu holo"},
    {"designation": "Console de jeux portable", "description": "écran 5 pouces"},
    {"designation": "Roman policier de poche"},
    {"designation": "Peluche lapin bébé", "description": "douce"},
]


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    root = tmp_path_factory.mktemp("predlog")
    return make_settings(build_project(root / "project"), root / "secrets")


def serve(settings, log: Path, umask: int = -1, **env: str) -> tuple[subprocess.Popen, str]:
    """`rakuten serve` on a free port, once its model is ready; umask=0 starts it as a careless service manager could."""
    port = free_port()
    with open(log, "a") as output:
        process = subprocess.Popen(
            [RAKUTEN, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env={**server_env(settings), **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            umask=umask,
        )
    base = f"http://127.0.0.1:{port}"
    wait_until(
        lambda: httpx.get(f"{base}/health", timeout=2).json()["model_ready"],
        "the model to load",
        process=process,
        log=log,
    )
    return process, base


def login(base: str, name: str) -> str:
    return httpx.post(f"{base}/token", data={"username": name, "password": PASSWORDS[name]}).json()["access_token"]


def metric(base: str, line_start: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(line_start)))


def logged_rows(folder: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(folder.glob("predictions-*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]


@pytest.mark.server
def test_answered_products_are_logged_exported_labelled_and_ingested(settings, tmp_path):
    folder = tmp_path / "log"
    process, base = serve(settings, tmp_path / "server.log", RAKUTEN_PREDICTION_LOG_DIR=str(folder))
    try:
        token = login(base, "alice")
        headers = {"Authorization": f"Bearer {token}"}
        answers = httpx.post(f"{base}/predict", json=PRODUCTS[:3], headers=headers).json()
        answers += [httpx.post(f"{base}/predict", json={**p, "top_k": 2}, headers=headers).json() for p in PRODUCTS[3:]]
        refused = httpx.post(f"{base}/predict", json={"designation": "<br>"}, headers=headers)
        assert refused.status_code == 422  # not answered: not logged
        rows = wait_until(lambda: len(logged_rows(folder)) == 5 and logged_rows(folder), "5 logged rows")
        assert metric(base, "rakuten_prediction_log_rows_total") == 5
        by_title = {row["designation"]: row for row in rows}
        first = by_title["Piscine tubulaire Intex 3 m"]
        assert first["description"] == "Avec pompe & bâche"  # cleaned as the model cleans it
        assert first["model_version"] == answers[0]["model_version"]
        assert first["prdtypecode"] == answers[0]["predictions"][0]["prdtypecode"]
        assert first["top_k"] == [
            [p["prdtypecode"], pytest.approx(p["score"], abs=1e-6)] for p in answers[0]["predictions"]
        ]
        assert len(by_title["Peluche lapin bébé"]["top_k"]) == 2
        everything = "".join(path.read_text() for path in folder.iterdir())
        assert token not in everything and PASSWORDS["alice"] not in everything and "Bearer" not in everything

        exported = tmp_path / "to-label.csv"
        done = subprocess.run(
            [RAKUTEN, "predictions", "export", "--since", "1h", "--out", str(exported), "--log-dir", str(folder)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert "wrote 5 product(s)" in done.stderr
        with open(exported, newline="", encoding="utf-8") as handle:
            table = list(csv.DictReader(handle))
        assert [list(row) for row in table][0] == ["designation", "description", "prdtypecode"]
        assert {row["prdtypecode"] for row in table} == {""}
        for row in table:  # a person labels them
            row["prdtypecode"] = str(by_title[row["designation"]]["prdtypecode"])
        with open(exported, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, ["designation", "description", "prdtypecode"])
            writer.writeheader()
            writer.writerows(table)
        ingested = httpx.post(
            f"{base}/ingest",
            headers=headers,
            timeout=120,
            files={"file": ("labelled.csv", exported.read_bytes(), "text/csv")},
        )
        assert ingested.status_code == 200, ingested.text
        assert ingested.json()["accepted"] == 5
    finally:
        stop(process)


@pytest.mark.server
def test_features_mode_keeps_numbers_not_text(settings, tmp_path):
    folder = tmp_path / "log"
    process, base = serve(
        settings, tmp_path / "server.log", RAKUTEN_PREDICTION_LOG_DIR=str(folder), RAKUTEN_PREDICTION_LOG="features"
    )
    try:
        headers = {"Authorization": f"Bearer {login(base, 'bob')}"}
        assert (
            httpx.post(
                f"{base}/predict", json={"designation": "Piscine zorglubique tubulaire"}, headers=headers
            ).status_code
            == 200
        )
        rows = wait_until(lambda: logged_rows(folder), "a logged row")
        assert "designation" not in rows[0] and "zorglubique" not in json.dumps(rows)
        assert rows[0]["tokens"] == 3 and rows[0]["unknown_tokens"] >= 1  # the made-up word at least
        done = subprocess.run(
            [RAKUTEN, "predictions", "export", "--log-dir", str(folder), "--out", str(tmp_path / "x.csv")],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0 and "1 logged without text" in done.stderr
    finally:
        stop(process)


def mount_namespace_refusal(unshare: str, folder: Path) -> str | None:
    """Why this machine will not mount a tmpfs in a private mount namespace, or None if it will.

    Runs nothing of the project, so a refusal is the machine's (a container without CAP_SYS_ADMIN,
    or under Docker's AppArmor profile), never the server's. The mount dies with the namespace."""
    mount = ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)]
    probe = subprocess.run(
        [unshare, "--mount", "--propagation", "private", *mount], capture_output=True, text=True, timeout=30
    )
    if probe.returncode == 0:
        return None
    return (probe.stderr + probe.stdout).strip() or f"exit status {probe.returncode}"


@pytest.mark.server
def test_a_full_disk_never_fails_a_prediction(settings, tmp_path):
    unshare = needs("unshare")
    folder = tmp_path / "full"
    folder.mkdir()
    refusal = mount_namespace_refusal(unshare, folder)
    if refusal is not None:
        unavailable(
            f"unshare is installed but this machine refuses a tmpfs in a private mount namespace ({refusal}); "
            "a container needs --cap-add SYS_ADMIN --security-opt apparmor=unconfined for it (CI's test job has them)"
        )
    port = free_port()
    # The server alone sees a 64 KiB tmpfs over the log folder, filled before it starts.
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {folder} || exit 1; "
        f"dd if=/dev/zero of={folder}/filler bs=4k 2>/dev/null; "
        f"exec {RAKUTEN} serve --host 127.0.0.1 --port {port}"
    )
    log = tmp_path / "server.log"
    with open(log, "w") as output:
        process = subprocess.Popen(
            [unshare, "--mount", "--propagation", "private", "sh", "-c", script],
            env={**server_env(settings), "RAKUTEN_PREDICTION_LOG_DIR": str(folder)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _ready(base):
            # The probe mounted the same way: an exit now is this test's or the server's failure.
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        headers = {"Authorization": f"Bearer {login(base, 'bob')}"}
        for product in PRODUCTS * 4:
            answer = httpx.post(f"{base}/predict", json=product, headers=headers)
            assert answer.status_code == 200, answer.text
        wait_until(
            lambda: metric(base, 'rakuten_prediction_log_errors_total{reason="write_failed"}') == 20,
            "20 lost log rows counted",
        )
        assert metric(base, "rakuten_prediction_log_rows_total") == 0
        assert "not written" in log.read_text() and "No space left on device" in log.read_text()
        assert log.read_text().count("not written") < 5  # said once a minute, not per prediction
    finally:
        stop(process)


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=2).json()["model_ready"]
    except (httpx.HTTPError, ValueError):
        return False


def _record(log: PredictionLog, n: int) -> None:
    model = SimpleNamespace(md5="0" * 32, pipeline=None)  # text mode reads only the md5
    for i in range(n):
        log.append(f"produit {i}", "x" * 200, [10, 40], [0.9, 0.1], model)
        log.flush()  # one write per row, as under light traffic: rotation is checked before each write


def test_files_rotate_by_size_and_expire_by_age_and_total(tmp_path):
    folder = tmp_path / "log"
    old = folder / "predictions-20200101T000000-1.jsonl"
    folder.mkdir()
    old.write_text('{"time": "2020-01-01T00:00:00+00:00", "prdtypecode": 10}\n')
    os.utime(old, (0, 0))  # far past the retention age
    log = PredictionLog(
        LogSettings(folder=folder, rotate_bytes=2_000, retention_seconds=86400, max_total_bytes=12_000),
        CollectorRegistry(),
    )
    _record(log, 60)  # ~330 bytes a row: ~10 files of 2 kB, only the newest ~12 kB kept
    log.close()
    files = sorted(folder.glob("predictions-*.jsonl"))
    assert not old.exists()
    assert 3 <= len(files) and sum(f.stat().st_size for f in files) <= 12_000 + 2_400
    rows = read_window(folder, since_time("1h")).rows
    assert 0 < len(rows) < 60 and rows[-1]["designation"] == "produit 59"


def test_bad_settings_and_windows_are_named():
    with pytest.raises(InputError, match="RAKUTEN_PREDICTION_LOG = 'verbose'"):
        LogSettings.from_env(Path("."), {"RAKUTEN_PREDICTION_LOG": "verbose"})
    with pytest.raises(InputError, match="RAKUTEN_PREDICTION_LOG_ROTATE_MB = '-1'"):
        LogSettings.from_env(Path("."), {"RAKUTEN_PREDICTION_LOG_ROTATE_MB": "-1"})
    with pytest.raises(InputError, match="--since 'yesterday'"):
        since_time("yesterday")
    done = subprocess.run(
        [RAKUTEN, "predictions", "export", "--log-dir", "/nonexistent-log"], capture_output=True, text=True
    )
    assert done.returncode != 0 and "no prediction log here" in done.stderr
