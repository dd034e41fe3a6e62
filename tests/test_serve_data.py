"""/ingest (valid, invalid, crash-safe) and /train (success, failure keeps the old model, 409), for real.

The module owns one trained project and changes it: tests run in file order.
"""

from __future__ import annotations

import re
import sys
import time

import pandas as pd
import pytest
import yaml

from mlops_rakuten.core.batches import BATCHES_FILE, read_batches
from mlops_rakuten.core.paths import X_FILE, Y_FILE
from mlops_rakuten.ops.raw_append import StagingCheckFailed, check_staged
from mlops_rakuten.ops.upload import BatchRefused, Upload, check_upload
from mlops_rakuten.serve.project import project_lock

from conftest import run
from serve_support import auth, build_project, client, make_settings, wait_until

pytestmark = pytest.mark.slow

HEADER = "designation,description,prdtypecode\n"
GOOD = 'Piscine tubulaire Intex 3 m,"<p>Avec pompe, bâche</p>",2583\nCarte Pokémon Pikachu holo,,1160\n'


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return make_settings(build_project(root / "project"), root / "secrets")


@pytest.fixture(scope="module")
def api(settings):
    with client(settings) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def admin(settings):
    return auth(settings, "alice", "admin")


def raw_bytes(settings) -> dict[str, bytes]:
    return {name: (settings.raw_dir / name).read_bytes() for name in (X_FILE, Y_FILE)}


def raw_md5(settings) -> str:
    return yaml.safe_load((settings.project_dir / "data/raw.dvc").read_text())["outs"][0]["md5"]


def upload(api, headers, text: str | bytes, name: str = "new.csv"):
    return api.post("/ingest", files={"file": (name, text, "text/csv")}, headers=headers)


def assert_raw_consistent(settings) -> None:
    """What the ingest stage demands: both files readable, same indices; no temp file left behind; the
    batch record, when there is one, ends where the rows end."""
    x = pd.read_csv(settings.raw_dir / X_FILE, index_col=0, dtype=str, keep_default_na=False)
    y = pd.read_csv(settings.raw_dir / Y_FILE, index_col=0, dtype=str, keep_default_na=False)
    assert x.index.equals(y.index) and x.index.is_unique
    assert {p.name for p in settings.raw_dir.iterdir()} <= {X_FILE, Y_FILE, BATCHES_FILE}
    batches = read_batches(settings.raw_dir)
    if batches:
        assert batches[-1].last_index == int(x.index[-1])


def test_ingest_appends_valid_rows_and_records_a_new_data_version(api, admin, settings):
    before, old_md5 = raw_bytes(settings), raw_md5(settings)
    response = upload(api, admin, HEADER + GOOD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["received"] == body["accepted"] == 2 and body["rejected"] == 0
    assert body["previous_data_md5"] == old_md5 and body["data_md5"] == raw_md5(settings) != old_md5
    after = raw_bytes(settings)
    for name in (X_FILE, Y_FILE):
        assert after[name].startswith(before[name])  # existing rows untouched, byte for byte
    x = pd.read_csv(settings.raw_dir / X_FILE, index_col=0, keep_default_na=False)
    y = pd.read_csv(settings.raw_dir / Y_FILE, index_col=0)
    assert body["first_index"] == x.index[-2] and body["last_index"] == x.index[-1] == y.index[-1]
    assert x.loc[body["first_index"], "description"] == "<p>Avec pompe, bâche</p>"
    assert list(y["prdtypecode"].tail(2)) == [2583, 1160]
    assert_raw_consistent(settings)
    assert "modified" not in run(["dvc", "status", "data/raw.dvc"], settings.project_dir).stdout
    batch = body["batch"]  # one batch, recorded in data/raw with the rows
    assert batch["first_index"] == body["first_index"] and batch["rows"] == 2 and batch["status"] == "accepted"
    assert read_batches(settings.raw_dir)[-1].as_dict() == batch


def test_ingest_reports_rows_without_usable_text_and_keeps_the_good_ones(api, admin, settings):
    rows = GOOD + "<p></p>,texte,10\n" + f"{'x' * 1001},,10\n"
    body = upload(api, admin, HEADER + rows).json()
    assert body["received"] == 4 and body["accepted"] == 2 and body["rejected"] == 2
    reasons = {r["row"]: " ".join(r["reasons"]) for r in body["rejects"]}
    assert set(reasons) == {3, 4}
    assert "designation is empty" in reasons[3]
    assert "longer than 1000 characters" in reasons[4]
    assert body["batch"]["rows"] == 2
    assert_raw_consistent(settings)


def test_a_bad_label_refuses_the_whole_batch_naming_its_lines(api, admin, settings):
    before, md5 = raw_bytes(settings), raw_md5(settings)
    rows = GOOD + "Livre ancien,,999\n" + '"Jouet\nen bois",,abc\n' + "Livre,,12.5\n"
    response = upload(api, admin, HEADER + rows)
    assert response.status_code == 422
    message = response.json()["detail"]["message"]
    assert "line 4: prdtypecode '999' is not one of the 27 class codes" in message
    assert "line 5: prdtypecode 'abc'" in message and "line 7: prdtypecode '12.5'" in message  # 5-6: one row
    assert message.endswith("nothing was added")
    assert raw_bytes(settings) == before and raw_md5(settings) == md5


@pytest.mark.parametrize(
    "content, words",
    [
        ("title,description,prdtypecode\nLivre,,10\n", "missing column 'designation'"),
        ("designation,description,prdtypecode,price\nLivre,,10,3\n", "unexpected column 'price'"),
        (HEADER, "no rows"),
        ("", "not a readable CSV"),
        (HEADER.encode() + "Livre à lire,,10\n".encode("latin-1"), "not UTF-8"),
        (HEADER + "Livre,,999\n", "line 2: prdtypecode '999' is not one of the 27 class codes"),
        (HEADER + "<p></p>,,10\n", "no row passed the checks"),
    ],
    ids=["wrong-column", "extra-column", "header-only", "empty", "latin-1", "unknown-class", "all-rejected"],
)
def test_ingest_refuses_a_bad_file_and_changes_nothing(api, admin, settings, content, words):
    before, md5 = raw_bytes(settings), raw_md5(settings)
    response = upload(api, admin, content)
    assert response.status_code == 422
    assert words in str(response.json()["detail"])
    assert raw_bytes(settings) == before and raw_md5(settings) == md5


def test_one_bad_label_in_a_large_upload_is_found_in_bulk():
    rows = "".join(f"Produit numéro {i},,2583\n" for i in range(100_000))
    clean = (HEADER + rows).encode()
    one_bad = (HEADER + rows.replace("Produit numéro 50000,,2583", "Produit numéro 50000,,25x3")).encode()

    def best_seconds(data: bytes) -> tuple[float, Upload | BatchRefused]:
        times = []
        for _ in range(2):
            started = time.perf_counter()
            try:
                outcome: Upload | BatchRefused = check_upload(data, "big.csv")
            except BatchRefused as exc:
                outcome = exc
            times.append(time.perf_counter() - started)
        return min(times), outcome

    clean_seconds, _ = best_seconds(clean)
    bad_seconds, refused = best_seconds(one_bad)
    assert isinstance(refused, BatchRefused)
    assert str(refused) == "big.csv: line 50002: prdtypecode '25x3' is not one of the 27 class codes; nothing was added"
    assert bad_seconds < 2 * clean_seconds + 0.2, (clean_seconds, bad_seconds)  # row by row it was 21x


def test_ingest_accepts_an_index_column_and_ids(api, admin, settings):
    text = ",designation,description,prdtypecode,productid,imageid\n7,Tondeuse thermique,,2585,123,456\n"
    body = upload(api, admin, text).json()
    assert body["accepted"] == 1
    last = (settings.raw_dir / X_FILE).read_text().splitlines()[-1]
    assert last == f"{body['first_index']},Tondeuse thermique,,123,456"  # a new index, not the upload's 7


def test_line_breaks_inside_fields_keep_the_raw_data_readable(api, admin, settings):
    # A bare \r used to be written unquoted: pandas then read one row more in X than in Y.
    text = HEADER + '"CR\rinside","one\r\ntwo\u2028three\x0bfour",2583\n' + "Livre suivant,,10\n"
    response = upload(api, admin, text)
    assert response.status_code == 200, response.text
    first = response.json()["first_index"]
    assert_raw_consistent(settings)
    x = pd.read_csv(settings.raw_dir / X_FILE, index_col=0, dtype={"designation": str}, keep_default_na=False)
    assert x.loc[first, "designation"] == "CR\ninside" and x.loc[first, "description"] == "one\ntwo three four"
    assert x.loc[first + 1, "designation"] == "Livre suivant"
    assert upload(api, admin, HEADER + GOOD).status_code == 200  # and later ingests still work
    assert_raw_consistent(settings)


def test_staged_files_that_do_not_read_back_are_never_committed(tmp_path):
    # Whatever a future writer gets wrong, the read-back check stops it before the commit marker.
    (tmp_path / X_FILE).write_text(",designation,description,productid,imageid\n0,a,,,\n1,CR\rinside,,,\n")
    (tmp_path / Y_FILE).write_text(",prdtypecode\n0,10\n1,2583\n")
    products = pd.DataFrame({"designation": ["CR\rinside"], "description": [""], "prdtypecode": [2583]})
    with pytest.raises(StagingCheckFailed, match="do not read back as written"):
        check_staged(tmp_path, 1, products)


def test_ingest_while_the_project_is_busy_is_409(api, admin, settings):
    with project_lock(settings.state_dir):
        response = upload(api, admin, HEADER + GOOD)
    assert response.status_code == 409 and "in progress" in response.json()["detail"]


CRASH = """
import os, sys
import pandas as pd
from pathlib import Path
from mlops_rakuten.ops import raw_append
from mlops_rakuten.ops.batches import Arrival
calls = {{"n": 0}}
real = getattr(os, {target!r})
def crash_on_call_{when}(*args, **kwargs):
    calls["n"] += 1
    if calls["n"] == {when}:
        os._exit(17)  # a hard crash: no cleanup code, no finally blocks
    return real(*args, **kwargs)
setattr(os, {target!r}, crash_on_call_{when})
rows = pd.DataFrame({{"designation": ["Robot piscine Dolphin"], "description": [""], "prdtypecode": [2583],
                      "productid": [""], "imageid": [""]}})
raw_append.append_products(Path(sys.argv[1]), Path(sys.argv[2]), rows, arrival=Arrival("crash", "2026-01-01T00:00:00Z"))
os._exit(17)  # no crash point reached: die right after the append, as before `dvc add`
"""


def crash_ingest(settings, target: str, when: int) -> None:
    code = CRASH.format(target=target, when=when)
    result = run(
        [sys.executable, "-c", code, str(settings.raw_dir), str(settings.raw_staging)],
        settings.project_dir,
        check=False,
    )
    assert result.returncode == 17, result.stderr


def test_crash_before_the_commit_point_loses_nothing(settings):
    before, md5 = raw_bytes(settings), raw_md5(settings)
    crash_ingest(settings, "fsync", 1)  # dies while staging: X copied, Y not yet
    assert raw_bytes(settings) == before and settings.raw_staging.exists()
    assert_raw_consistent(settings)
    with client(settings):  # a restarting server discards the unfinished staging
        pass
    assert not settings.raw_staging.exists() and raw_bytes(settings) == before and raw_md5(settings) == md5


def test_crash_between_the_two_renames_is_finished_on_restart(settings):
    before, md5 = raw_bytes(settings), raw_md5(settings)
    crash_ingest(settings, "replace", 2)  # X renamed into place, then death before Y
    assert raw_bytes(settings)[X_FILE] != before[X_FILE] and raw_bytes(settings)[Y_FILE] == before[Y_FILE]
    with client(settings):  # the restart completes the committed append and records it
        pass
    after = raw_bytes(settings)
    assert all(after[name].startswith(before[name]) and after[name] != before[name] for name in after)
    assert after[X_FILE].decode().splitlines()[-1].endswith("Robot piscine Dolphin,,,")
    assert_raw_consistent(settings)
    assert raw_md5(settings) != md5 and not settings.raw_staging.exists()
    assert "modified" not in run(["dvc", "status", "data/raw.dvc"], settings.project_dir).stdout


def record_bytes(settings) -> bytes:
    path = settings.raw_dir / BATCHES_FILE
    return path.read_bytes() if path.exists() else b""


def test_crash_while_staging_the_batch_record_loses_nothing_and_leaves_no_half_record(settings):
    before, record, md5 = raw_bytes(settings), record_bytes(settings), raw_md5(settings)
    crash_ingest(settings, "fsync", 3)  # X and Y staged, the record being written
    assert raw_bytes(settings) == before and record_bytes(settings) == record
    with client(settings):
        pass
    assert raw_bytes(settings) == before and record_bytes(settings) == record and raw_md5(settings) == md5
    assert not settings.raw_staging.exists()


def test_crash_before_the_record_is_renamed_is_finished_on_restart(settings):
    before, record = raw_bytes(settings), record_bytes(settings)
    crash_ingest(settings, "replace", 3)  # X and Y renamed into place, then death before the record
    assert raw_bytes(settings) != before and record_bytes(settings) == record
    with client(settings):  # the restart renames the staged record too: rows and record agree
        pass
    assert record_bytes(settings).startswith(record) and record_bytes(settings) != record
    assert read_batches(settings.raw_dir)[-1].source == "crash"
    assert_raw_consistent(settings)


def test_crash_during_dvc_add_is_recorded_on_restart(settings):
    before, md5 = raw_bytes(settings), raw_md5(settings)
    crash_ingest(settings, "getpid", 10**9)  # the append completes, then the process dies before `dvc add`
    assert raw_bytes(settings) != before and raw_md5(settings) == md5  # data/raw.dvc is stale
    with client(settings):  # the restart records the appended files
        pass
    assert raw_md5(settings) != md5 and not settings.raw_staging.exists()
    assert "modified" not in run(["dvc", "status", "data/raw.dvc"], settings.project_dir).stdout


def set_param_c(settings, value: str) -> None:
    params = settings.project_dir / "params.yaml"
    params.write_text(re.sub(r"(?m)^  C: .*$", f"  C: {value}", params.read_text()))


def wait_for_job(api, admin, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/train/{job_id}", headers=admin).json()
        if job["status"] != "running":
            return job
        time.sleep(0.5)
    raise AssertionError(f"training job {job_id} still running after {timeout}s")


def served_version(api, admin) -> str:
    return api.post("/predict", json={"designation": "Piscine hors sol"}, headers=admin).json()["model_version"]


@pytest.fixture(scope="module")
def other_worker(settings):
    """A second app on the same project, as a second uvicorn worker would be."""
    with client(settings) as test_client:
        yield test_client


def test_train_runs_dvc_repro_and_serves_the_new_model(api, admin, settings, other_worker):
    old = served_version(api, admin)
    assert served_version(other_worker, admin) == old
    set_param_c(settings, "0.3")  # params.yaml's is 0.5: another C, another model
    started = api.post("/train", headers=admin)
    assert started.status_code == 202
    job_id = started.json()["job_id"]
    # One run at a time; an ingest would change the data under it.
    assert api.post("/train", headers=admin).status_code == 409
    assert upload(api, admin, HEADER + GOOD).status_code == 409
    assert api.get("/info", headers=admin).json()["busy"] is True
    job = wait_for_job(api, admin, job_id)
    assert job["status"] == "succeeded", job["log"]
    # A real model, far above chance (1/27), though 600 demo rows teach few of its rare names.
    assert job["metrics"]["f1_weighted"] > 0.3 and job["finished_at"] >= job["started_at"]
    info = api.get("/info", headers=admin).json()
    assert job["model_md5"] == info["model"]["md5"] == info["model"]["loaded_md5"] != old
    assert info["params"]["C"] == 0.3 and info["busy"] is False
    assert served_version(api, admin) == job["model_md5"]
    # The other worker looks at the published marker once a second (5 s: room for a loaded machine).
    wait_until(lambda: served_version(other_worker, admin) == job["model_md5"], "the other worker's swap", timeout=5)
    assert 'rakuten_train_runs_total{status="succeeded"} 1.0' in api.get("/metrics").text


def test_failed_training_keeps_the_old_model(api, admin, settings, other_worker):
    old = served_version(api, admin)
    set_param_c(settings, "-1")  # the train stage refuses it
    try:
        job = wait_for_job(api, admin, api.post("/train", headers=admin).json()["job_id"])
    finally:
        set_param_c(settings, "0.3")  # the served model's
    assert job["status"] == "failed" and job["metrics"] is None
    assert any("model.C = -1" in line for line in job["log"]), job["log"]
    assert served_version(api, admin) == served_version(other_worker, admin) == old
    info = api.get("/info", headers=admin).json()
    assert info["model"]["loaded_md5"] == info["model"]["md5"] == old and info["model"]["error"] is None
    # dvc removed the model file before the failed stage; it is back, so a restart serves the same one.
    with client(settings) as restarted:
        assert served_version(restarted, admin) == old


def test_unknown_job_is_404(api, admin):
    assert api.get("/train/0123456789abcdef", headers=admin).status_code == 404
    assert api.get("/train/..%2F..%2Fetc", headers=admin).status_code == 404
