"""A server started without models/model.joblib (a command-line `dvc repro` crashed in train) restores it
from the DVC cache, checked against dvc.lock; a damaged cache entry is never served.

Real `rakuten serve` processes and a real DVC project; the module owns the project: tests run in order.
"""

from __future__ import annotations

import httpx
import pytest

from mlops_rakuten.serve.model import file_md5
from mlops_rakuten.serve.project import locked_model_md5
from mlops_rakuten.serve.restore import cache_dir, cached_file, restore_model
from mlops_rakuten.serve.settings import MODEL_PATH

from serve_support import auth, build_project, free_port, make_settings, start_server, stop

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    root = tmp_path_factory.mktemp("restore")
    return make_settings(build_project(root / "project"), root / "secrets")


def test_a_server_started_without_the_model_restores_and_serves_it(settings, tmp_path):
    model = settings.project_dir / MODEL_PATH
    recorded = locked_model_md5(settings.project_dir)
    model.unlink()
    port = free_port()
    server = start_server(settings, port, tmp_path / "server.log")
    try:
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/health").json()["model_ready"] is True
        answer = httpx.post(
            f"{url}/predict", json={"designation": "Piscine hors sol"}, headers=auth(settings, "bob", "user")
        )
        assert answer.status_code == 200 and answer.json()["model_version"] == recorded
    finally:
        stop(server)
    assert model.is_file() and file_md5(model) == recorded
    assert "restored models/model.joblib" in (tmp_path / "server.log").read_text()


def test_a_damaged_cache_entry_is_not_restored(settings):
    root = settings.project_dir
    model = root / MODEL_PATH
    recorded = locked_model_md5(root)
    assert recorded is not None  # the fixture's project has run the pipeline
    cached = cached_file(cache_dir(root), recorded)
    good = cached.read_bytes()
    model.unlink()
    cached.chmod(0o644)
    cached.write_bytes(b"not the model dvc.lock records")
    try:
        message = restore_model(root, settings.state_dir)
        assert "not restored" in message and recorded in message
        assert not model.exists() and not list(model.parent.glob(".model.joblib.*"))
    finally:
        cached.write_bytes(good)
    assert restore_model(root, settings.state_dir).startswith("restored") and file_md5(model) == recorded


def test_nothing_to_restore_is_said_so(settings):
    assert restore_model(settings.project_dir, settings.state_dir) == f"{MODEL_PATH} is there"
