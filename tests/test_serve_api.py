"""/predict, /info and /metrics on a project trained by the real `dvc repro`."""

from __future__ import annotations

import asyncio
import json

import httpx
import pandas as pd
import pytest
import yaml

from mlops_rakuten.core.categories import CLASSES
from mlops_rakuten.core.predict import load_model, predict_top_k
from mlops_rakuten.serve.app import create_app

from conftest import run
from serve_support import auth, client, make_settings, shared_trained_project


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    project = shared_trained_project(tmp_path_factory)
    return make_settings(project, tmp_path_factory.mktemp("api-secrets"))


@pytest.fixture(scope="module")
def api(settings):
    with client(settings) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def user(settings):
    return auth(settings, "bob", "user")


def lock_md5(project) -> str:
    outs = yaml.safe_load((project / "dvc.lock").read_text())["stages"]["train"]["outs"]
    return next(o["md5"] for o in outs if o["path"] == "models/model.joblib")


def test_predict_returns_top_k_with_names_scores_and_version(api, user, settings):
    body = {
        "designation": "Piscine hors sol tubulaire Intex",
        "description": "<p>Avec pompe de filtration</p>",
        "top_k": 5,
    }
    response = api.post("/predict", json=body, headers=user)
    assert response.status_code == 200, response.text
    result = response.json()
    predictions = result["predictions"]
    assert len(predictions) == 5
    assert predictions[0]["prdtypecode"] == 2583
    for item in predictions:
        assert item["category"] == CLASSES[item["prdtypecode"]][0]
    scores = [item["score"] for item in predictions]
    assert scores == sorted(scores, reverse=True) and 0 < scores[-1] <= scores[0] <= 1
    assert result["model_version"] == lock_md5(settings.project_dir)
    assert "softmax" in result["score"]


def test_predict_agrees_with_the_library(api, user, settings):
    model = load_model(settings.model_path)
    texts = pd.read_csv(settings.project_dir / "data/split/test.csv", index_col=0, keep_default_na=False).head(20)
    codes, _ = predict_top_k(model, texts[["designation", "description"]], 2)
    for (designation, description), expected in zip(texts[["designation", "description"]].values, codes, strict=True):
        body = {"designation": designation, "description": description, "top_k": 2}
        got = api.post("/predict", json=body, headers=user).json()["predictions"]
        assert [p["prdtypecode"] for p in got] == list(expected)


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(user, settings):
    """40 requests at once, each with its own text and top_k: fewer model calls, the same answers."""
    app = create_app(settings)
    model = load_model(settings.model_path)
    texts = pd.read_csv(settings.project_dir / "data/split/test.csv", index_col=0, keep_default_na=False).head(40)
    bodies = [
        {"designation": d, "description": s, "top_k": 1 + i % 5}
        for i, (d, s) in enumerate(texts[["designation", "description"]].values)
    ]

    async def send_all():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=user) as api:
            return await asyncio.gather(*(api.post("/predict", json=body) for body in bodies))

    responses = asyncio.run(send_all())
    for body, response in zip(bodies, responses, strict=True):
        assert response.status_code == 200, response.text
        codes, _ = predict_top_k(model, pd.DataFrame([body])[["designation", "description"]], body["top_k"])
        assert [p["prdtypecode"] for p in response.json()["predictions"]] == list(codes[0])
    registry = app.state.metrics.registry
    calls = registry.get_sample_value("rakuten_predict_batch_size_count")
    rows = registry.get_sample_value("rakuten_predict_batch_size_sum")
    assert rows == 40 and calls < 40, (calls, rows)


def test_predict_defaults_to_three_and_description_is_optional(api, user):
    response = api.post("/predict", json={"designation": "Carte Pokémon Dracaufeu holo"}, headers=user)
    assert response.status_code == 200 and len(response.json()["predictions"]) == 3


@pytest.mark.parametrize(
    "body, where, words",
    [
        ({"designation": "<p> </p>", "description": "<br/>"}, ["body"], "no text once HTML tags are stripped"),
        ({"designation": "x" * 1001}, ["body", "designation"], "at most 1000 characters"),
        ({"designation": "Livre", "description": "y" * 20001}, ["body", "description"], "at most 20000 characters"),
        ({"designation": "Livre", "top_k": 0}, ["body", "top_k"], "greater than or equal to 1"),
        ({"designation": "Livre", "top_k": 28}, ["body", "top_k"], "less than or equal to 27"),
        ({"designation": "Livre", "descripton": "typo"}, ["body", "descripton"], "Extra inputs"),
        ({"description": "sans titre"}, ["body", "designation"], "Field required"),
        ({"designation": 42}, ["body", "designation"], "valid string"),
    ],
    ids=["html-only", "long-title", "long-description", "top-k-0", "top-k-28", "unknown-field", "no-title", "not-text"],
)
def test_predict_validation_errors_are_422_with_a_clear_message(api, user, body, where, words):
    response = api.post("/predict", json=body, headers=user)
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert any(e["loc"] == where and words in e["msg"] for e in errors), errors
    assert "x" * 1001 not in response.text  # the refused text is not echoed back


def test_info_reports_model_data_params_metrics_and_commit(api, user, settings):
    project = settings.project_dir
    info = api.get("/info", headers=user).json()
    model = info["model"]
    assert model["ready"] is True and model["path"] == "models/model.joblib"
    assert model["md5"] == model["loaded_md5"] == lock_md5(project) and model["matches_dvc_lock"] is True
    assert model["loaded_at"].endswith("+00:00") and model["load_seconds"] > 0
    raw = yaml.safe_load((project / "data/raw.dvc").read_text())["outs"][0]
    assert info["data"] == {"path": "data/raw.dvc", "md5": raw["md5"], "size": raw["size"], "nfiles": 2}
    assert info["params"] == yaml.safe_load((project / "params.yaml").read_text())["model"]
    assert info["metrics"] == json.loads((project / "metrics/metrics.json").read_text())
    assert info["git_commit"] == run(["git", "rev-parse", "HEAD"], project).stdout.strip()
    assert info["busy"] is False


def _samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric in Prometheus text format."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) :].rsplit(" ", 1)
            found[labels] = float(value)
    return found


def test_metrics_count_requests_latency_predictions_and_model(api, user, settings):
    before = _samples(api.get("/metrics").text, "rakuten_predictions_total")
    for _ in range(3):
        api.post("/predict", json={"designation": "Piscine hors sol Intex"}, headers=user)
    api.post("/predict", json={"designation": ""}, headers=user)
    api.get("/info")
    text = api.get("/metrics").text

    requests = _samples(text, "rakuten_http_requests_total")
    assert requests['{method="POST",route="/predict",status="200"}'] >= 3
    assert requests['{method="POST",route="/predict",status="422"}'] >= 1
    assert requests['{method="GET",route="/info",status="401"}'] >= 1
    buckets = _samples(text, "rakuten_http_request_duration_seconds_bucket")
    assert buckets['{le="+Inf",method="POST",route="/predict",status="200"}'] >= 3

    predictions = _samples(text, "rakuten_predictions_total")
    assert len(predictions) == len(CLASSES)  # every class is exported, even at 0
    key = '{prdtypecode="2583"}'
    assert predictions[key] - before[key] == 3
    info = _samples(text, "rakuten_model_info")
    assert info == {
        f'{{md5="{lock_md5(settings.project_dir)}",path="{settings.model_path}",since="",stage="",version=""}}': 1.0
    }


def test_unknown_routes_are_counted_without_their_path(api):
    assert api.get("/no/such/page").status_code == 404
    requests = _samples(api.get("/metrics").text, "rakuten_http_requests_total")
    assert requests['{method="GET",route="other",status="404"}'] >= 1
