"""A server killed with `kill -9` during /train: the restart serves the last good model and knows the run.

Real `rakuten serve` processes on loopback, a real `dvc repro`. The module owns one
trained project and changes it: tests run in file order.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess

import httpx
import pytest
import yaml

from mlops_rakuten.serve.settings import MODEL_PATH

from serve_support import auth, build_project, free_port, make_settings, start_server, stop, wait_until

pytestmark = pytest.mark.server

UPLOAD = "designation,description,prdtypecode\nRobot piscine Dolphin,,2583\n"


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    return make_settings(build_project(root / "project"), root / "secrets")


@pytest.fixture
def servers(settings, tmp_path):
    """Start servers (each its own process group); every group left is killed at the end."""
    started = []

    def start() -> tuple[str, "subprocess.Popen"]:
        port = free_port()
        process = start_server(settings, port, tmp_path / "server.log", new_session=True)
        started.append(process)
        return f"http://127.0.0.1:{port}", process

    yield start
    for process in started:
        if process.poll() is None:
            stop(process)
        try:
            os.killpg(process.pid, signal.SIGKILL)  # a dvc repro the test left running
        except ProcessLookupError:
            pass


def set_param_c(settings, value: str) -> None:
    params = settings.project_dir / "params.yaml"
    params.write_text(re.sub(r"(?m)^  C: .*$", f"  C: {value}", params.read_text()))


def predict_version(url: str, headers: dict) -> str:
    response = httpx.post(f"{url}/predict", json={"designation": "Piscine hors sol"}, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["model_version"]


def test_restart_after_a_kill_mid_training_serves_the_last_good_model(settings, servers):
    admin = auth(settings, "alice", "admin")
    url, server = servers()
    old = predict_version(url, admin)
    set_param_c(settings, "0.3")
    job_id = httpx.post(f"{url}/train", headers=admin, timeout=10).json()["job_id"]
    model = settings.project_dir / MODEL_PATH
    wait_until(lambda: not model.exists(), "dvc to delete the model before the train stage", timeout=120)
    os.killpg(server.pid, signal.SIGKILL)  # the server and its dvc repro, mid-train
    server.wait()
    assert not model.exists()

    url, _ = servers()
    assert httpx.get(f"{url}/health").json()["model_ready"] is True
    assert predict_version(url, admin) == old
    info = httpx.get(f"{url}/info", headers=admin).json()
    assert info["last_training"]["id"] == job_id and info["last_training"]["status"] == "interrupted"
    assert info["model"]["loaded_md5"] == info["model"]["md5"] == old and info["busy"] is False
    assert model.is_file()  # put back from the DVC cache, so the workspace matches dvc.lock again
    job = httpx.get(f"{url}/train/{job_id}", headers=admin).json()
    assert job["status"] == "interrupted" and "did not finish" in job["log"][-1]


def test_a_run_that_outlives_its_server_keeps_the_project_until_it_ends(settings, servers):
    admin = auth(settings, "alice", "admin")
    # A last stage that waits for the test's word (at most 5 minutes), so the run is still going when the new
    # server is up, however slowly it starts.
    dvc_yaml = settings.project_dir / "dvc.yaml"
    release, lingering = settings.project_dir / "linger.release", settings.project_dir / "linger.started"
    pipeline = yaml.safe_load(dvc_yaml.read_text())
    pipeline["stages"]["linger"] = {
        "cmd": f"touch {lingering.name}; for i in $(seq 1500); do [ -f {release.name} ] && break; sleep 0.2; done",
        "deps": [MODEL_PATH],
    }
    dvc_yaml.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    set_param_c(settings, "0.7")
    url, server = servers()
    old = predict_version(url, admin)
    started = httpx.post(f"{url}/train", headers=admin, timeout=10)
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    wait_until(lingering.exists, "the run to reach its last stage", timeout=300)
    server.kill()  # the server alone: its dvc repro goes on
    server.wait()

    url, _ = servers()
    assert httpx.post(f"{url}/train", headers=admin, timeout=10).status_code == 409
    ingest = httpx.post(f"{url}/ingest", headers=admin, files={"file": ("new.csv", UPLOAD, "text/csv")}, timeout=30)
    assert ingest.status_code == 409, ingest.text
    assert httpx.get(f"{url}/info", headers=admin).json()["busy"] is True
    assert httpx.get(f"{url}/train/{job_id}", headers=admin).json()["status"] == "running"
    release.touch()

    def finished():
        job = httpx.get(f"{url}/train/{job_id}", headers=admin).json()
        return job if job["status"] != "running" else None

    job = wait_until(finished, "the orphaned run to end and be settled", timeout=300)
    assert job["status"] == "succeeded", job["log"]
    assert job["log"][-1] == "finished while the server was restarting"
    assert job["model_md5"] != old and predict_version(url, admin) == job["model_md5"]
    info = httpx.get(f"{url}/info", headers=admin).json()
    assert info["busy"] is False and info["model"]["md5"] == job["model_md5"]
    assert httpx.post(f"{url}/train", headers=admin, timeout=10).status_code == 202  # the project is free again


def test_a_kill_during_evaluate_serves_the_last_evaluated_model_with_its_metrics(settings, servers):
    """dvc.lock already names the new model when `evaluate` starts: a restart must not serve it."""
    admin = auth(settings, "alice", "admin")
    dvc_yaml = settings.project_dir / "dvc.yaml"
    pipeline = yaml.safe_load(dvc_yaml.read_text())
    pipeline["stages"]["evaluate"]["cmd"] = "sleep 5 && " + pipeline["stages"]["evaluate"]["cmd"]  # time to kill it
    dvc_yaml.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    set_param_c(settings, "0.4")
    uncached = [
        settings.project_dir / path
        for path in (
            "metrics/metrics.json",
            "metrics/classes.json",
            "plots/confusion_matrix.png",
            "plots/predictions.csv",
        )
    ]
    before = {path: path.read_bytes() for path in uncached}
    url, server = servers()
    old = predict_version(url, admin)
    old_metrics = httpx.get(f"{url}/info", headers=admin).json()["metrics"]
    job_id = httpx.post(f"{url}/train", headers=admin, timeout=10).json()["job_id"]
    log = settings.state_dir / "jobs" / f"{job_id}.log"
    wait_until(lambda: "Running stage 'evaluate'" in log.read_text(), "the run to reach evaluate", timeout=300)
    os.killpg(server.pid, signal.SIGKILL)  # the server and its dvc repro, during evaluate
    server.wait()
    assert not uncached[0].exists()  # dvc deleted evaluate's outputs before running it

    url, _ = servers()
    assert predict_version(url, admin) == old
    info = httpx.get(f"{url}/info", headers=admin).json()
    assert info["model"]["loaded_md5"] == info["model"]["md5"] == old  # dvc.lock names the served model again
    assert info["metrics"] == old_metrics and info["last_training"]["status"] == "interrupted"
    assert {path: path.read_bytes() for path in uncached} == before  # metrics and plots are back
