"""The deployment files on this machine: Debian's nginx in front of a real `rakuten serve`, and
Debian's Prometheus scraping it. Skipped, with the reason, where those binaries are not installed;
failed instead in CI, which installs them (`needs` in tests/conftest.py)."""

from __future__ import annotations

import subprocess

import httpx
import pytest
import yaml

from conftest import ROOT, needs
from serve_support import (
    PASSWORDS,
    free_port,
    make_settings,
    shared_trained_project,
    start_nginx,
    start_server,
    stop,
    wait_until,
)

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`rakuten serve` with two workers on a loopback port, as deployed; yields (settings, port)."""
    project = shared_trained_project(tmp_path_factory)
    folder = tmp_path_factory.mktemp("deploy")
    settings = make_settings(project, folder / "secrets")
    port = free_port()
    process = start_server(settings, port, folder / "server.log", workers=2)
    yield settings, port
    stop(process)


@pytest.fixture(scope="module")
def nginx(server, tmp_path_factory):
    """Debian's nginx with deployments/nginx/nginx.conf, on loopback; yields (https_port, http_port, ca)."""
    _, app_port = server
    process, https_port, http_port, context = start_nginx(app_port, tmp_path_factory.mktemp("nginx"))
    yield https_port, http_port, context
    stop(process)


def test_https_login_and_predict_through_nginx(nginx):
    https_port, _, context = nginx
    with httpx.Client(base_url=f"https://127.0.0.1:{https_port}", verify=context, timeout=30) as api:
        login = api.post("/token", data={"username": "bob", "password": PASSWORDS["bob"]})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        response = api.post("/predict", json={"designation": "Piscine hors sol Intex", "top_k": 2}, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["predictions"][0]["prdtypecode"] == 2583
        assert response.headers["strict-transport-security"].startswith("max-age=")
        assert api.post("/predict", json={"designation": "x"}).status_code == 401


def test_plain_http_redirects_to_https(nginx):
    https_port, http_port, _ = nginx
    response = httpx.get(f"http://127.0.0.1:{http_port}/info?x=1", follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"] == f"https://127.0.0.1:{https_port}/info?x=1"


def test_metrics_are_not_exposed_through_nginx(nginx, server):
    https_port, _, context = nginx
    for path in ("/metrics", "/metrics/", "/metrics?format=text"):
        assert httpx.get(f"https://127.0.0.1:{https_port}{path}", verify=context).status_code == 404
    _, app_port = server  # while the app itself still serves them on its private address
    assert "rakuten_http_requests_total" in httpx.get(f"http://127.0.0.1:{app_port}/metrics").text


def test_metrics_add_up_over_the_workers(server):
    """Each scrape lands on one worker; with the shared multiprocess files it still reports them all."""
    _, app_port = server
    base = f"http://127.0.0.1:{app_port}"
    for _ in range(20):
        httpx.get(f"{base}/health")  # a new connection each time, so the kernel spreads them over workers
    lines = httpx.get(f"{base}/metrics").text.splitlines()
    health = [line for line in lines if line.startswith('rakuten_http_requests_total{method="GET",route="/health"')]
    assert len(health) == 1 and float(health[0].split()[-1]) >= 20
    info = [line for line in lines if line.startswith("rakuten_model_info{")]
    assert len(info) == 1 and info[0].endswith(" 1.0")


def test_prometheus_config_is_valid():
    result = subprocess.run(
        [needs("promtool"), "check", "config", str(ROOT / "deployments/prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.needs("prometheus")
def test_prometheus_scrapes_the_running_app(server, tmp_path):
    _, app_port = server
    config = yaml.safe_load((ROOT / "deployments/prometheus/prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"  # the repo's job, pointed at this test's app
    job = config["scrape_configs"][0]
    job["static_configs"][0]["targets"] = [f"127.0.0.1:{app_port}"]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port, log = free_port(), tmp_path / "prometheus.out"
    with open(log, "w") as output:
        process = subprocess.Popen(
            [
                needs("prometheus"),
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:

        def target_up():
            response = httpx.get(f"{api}/targets", timeout=2)
            if response.status_code == 503:  # "Service Unavailable" while its storage starts
                return []
            targets = response.json()["data"]["activeTargets"]
            return [t for t in targets if t["labels"]["job"] == job["job_name"] and t["health"] == "up"]

        (target,) = wait_until(target_up, "prometheus to scrape the app", timeout=60, process=process, log=log)
        assert target["scrapeUrl"] == f"http://127.0.0.1:{app_port}/metrics"

        def scraped(query: str):
            return httpx.get(f"{api}/query", params={"query": query}, timeout=2).json()["data"]["result"]

        up = wait_until(lambda: scraped(f'up{{job="{job["job_name"]}"}}'), "the up series", process=process, log=log)
        assert up[0]["value"][1] == "1"
        info = wait_until(lambda: scraped("rakuten_model_info"), "the model info series", process=process, log=log)
        assert info[0]["metric"]["service"] == "rakuten-classifier" and info[0]["value"][1] == "1"
    finally:
        stop(process)
