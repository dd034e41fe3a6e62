"""The container stack for real (`make docker-test`): the local base image if missing, build, up until
healthy (one writer, two predict replicas), then through nginx on loopback ports: login, predict, info,
an admin ingest + train on the writer whose model every replica serves, Prometheus scraping all three; then down and up again (ingested rows and the new model are
still there) and down -v (the volumes are gone). It runs under its own compose project name, image tag and
random ports, prints the containers' last log lines on failure and always tears everything down. Its
images keep the tag `docker-test` (not `latest`; RAKUTEN_TEST_IMAGE_TAG sets another, for runs side by side),
so that their layers stay cached for the next run.

Only `make docker-test` runs it (RAKUTEN_DOCKER_TEST=1; .ci/run does right after `make test`). A missing
tool skips it with the install hint; a machine where containers cannot run at all skips it with the engine's
error (under .ci/run both fail instead: tests/conftest.py)."""

from __future__ import annotations

import os
import secrets
import ssl
import subprocess
import time
import uuid

import httpx
import pytest
import yaml

from mlops_rakuten.serve.users import add_user

from conftest import ROOT, needs, unavailable
from serve_support import PASSWORDS, free_port, wait_until

pytestmark = [
    pytest.mark.container,
    pytest.mark.skipif(
        not os.environ.get("RAKUTEN_DOCKER_TEST"),
        reason="the container stack runs in `make docker-test` (.ci/run runs it)",
    ),
]

LOCAL_BASE = "localhost/debian:bookworm"
TIMINGS: dict[str, float] = {}


def make(target: str, env: dict[str, str], timeout: float, label: str | None = None) -> subprocess.CompletedProcess:
    """A make target of the repository, timed into TIMINGS; raises with its output when it fails."""
    start = time.monotonic()
    result = subprocess.run(
        ["make", "--no-print-directory", target], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    TIMINGS[label or target] = time.monotonic() - start
    if result.returncode != 0:
        raise AssertionError(
            f"make {target} exited {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def engine_command(env: dict[str, str]) -> str:
    """podman or docker, as the Makefile chose it (make compose-check says what to install otherwise)."""
    checked = subprocess.run(
        ["make", "-s", "--no-print-directory", "compose-check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if checked.returncode != 0:  # neither docker compose nor podman + podman-compose
        needs("podman")
        needs("podman-compose")
    engine = checked.stderr.split()[-1].rstrip(")")  # "compose: ... (engine: podman)"
    if engine == "podman":  # what podman needs here besides itself (tests/system_packages.txt says why)
        for command in ("runc", "catatonit", "iptables", "/usr/lib/cni/dnsname"):
            needs(command)
    return engine


@pytest.fixture(scope="module")
def stack(tmp_path_factory, request):
    needs("openssl")
    folder = tmp_path_factory.mktemp("stack")
    name = f"rakuten-test-{uuid.uuid4().hex[:8]}"
    for user, role in (("alice", "admin"), ("bob", "user")):
        add_user(folder / "users.json", user, role, PASSWORDS[user])
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(folder / "server.key"),
            "-out",
            str(folder / "server.crt"),
        ],
        check=True,
        capture_output=True,
    )
    ports = {
        "RAKUTEN_HTTPS_PORT": free_port(),
        "RAKUTEN_HTTP_PORT": free_port(),
        "RAKUTEN_PROMETHEUS_PORT": free_port(),
    }
    # The local base image (built from Debian's mirror) unless RAKUTEN_TEST_BASE_IMAGE names one from a registry.
    base = os.environ.get("RAKUTEN_TEST_BASE_IMAGE") or LOCAL_BASE
    env = {
        **{k: v for k, v in os.environ.items() if k != "DAGSHUB_TOKEN"},  # never a real remote from a test
        **{k: str(v) for k, v in ports.items()},
        "STACK": name,
        "RAKUTEN_IMAGE_TAG": os.environ.get("RAKUTEN_TEST_IMAGE_TAG", "docker-test"),
        "BASE_IMAGE": base,
        "RAKUTEN_PUBLISH_ADDRESS": "127.0.0.1",
        "RAKUTEN_JWT_SECRET": secrets.token_hex(32),
        "RAKUTEN_USERS_FILE": str(folder / "users.json"),
        "RAKUTEN_TLS_DIR": str(folder),
        "RAKUTEN_UP_TIMEOUT": "900",
        "RAKUTEN_MONITOR_INTERVAL": "15s",
        "REPLICAS": "2",
    }
    engine = engine_command(env)
    if base == LOCAL_BASE:
        if subprocess.run([engine, "image", "inspect", LOCAL_BASE], env=env, capture_output=True).returncode != 0:
            needs("mmdebstrap")
        make("base-image", env, timeout=900)
    probe = subprocess.run(
        [engine, "run", "--rm", "--network", "none", base, "true"], env=env, capture_output=True, text=True, timeout=120
    )
    if probe.returncode != 0:
        unavailable(f"containers cannot run here: {engine} run exited {probe.returncode}: {probe.stderr.strip()}")
    failed_before = request.session.testsfailed
    try:
        make("docker-build", env, timeout=1800)
        make("docker-up", env, timeout=1200, label="docker-up (first start: data + dvc repro, to healthy)")
        yield {
            "env": env,
            "engine": engine,
            "name": name,
            "folder": folder,
            **ports,
            "tls": ssl.create_default_context(cafile=str(folder / "server.crt")),
        }
    finally:
        if request.session.testsfailed != failed_before:
            logs = subprocess.run(
                ["make", "--no-print-directory", "docker-logs"],
                cwd=ROOT,
                env={**env, "TAIL": "60"},
                capture_output=True,
                text=True,
                timeout=120,
            )
            print(f"\n--- last log lines of {name}:\n{logs.stdout[-12000:]}{logs.stderr[-4000:]}")
        subprocess.run(
            ["make", "--no-print-directory", "docker-down-v"], cwd=ROOT, env=env, capture_output=True, timeout=300
        )
        print("\n" + "\n".join(f"make {target}: {seconds:.1f} s" for target, seconds in TIMINGS.items()))


def api(stack) -> httpx.Client:
    return httpx.Client(base_url=f"https://127.0.0.1:{stack['RAKUTEN_HTTPS_PORT']}", verify=stack["tls"], timeout=60)


def login(client: httpx.Client, user: str) -> dict[str, str]:
    response = client.post("/token", data={"username": user, "password": PASSWORDS[user]})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_the_api_answers_through_nginx_with_tls(stack):
    with api(stack) as client:
        health = client.get("/health").json()
        assert (health["status"], health["model_ready"]) == ("ok", True)
        headers = login(client, "bob")
        response = client.post(
            "/predict", headers=headers, json={"designation": "Piscine hors sol tubulaire Intex", "top_k": 3}
        )
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert [p["prdtypecode"] for p in predictions][0] == 2583 and len(predictions) == 3
        assert predictions[0]["category"] == "Piscine et spa"
        info = client.get("/info", headers=headers).json()
        assert info["model"]["ready"] and info["model"]["matches_dvc_lock"]
        assert info["git_commit"]  # the project volume is a git repository
        assert client.post("/ingest", headers=headers, files={"file": ("x.csv", b"designation\n")}).status_code == 403
        assert client.get("/metrics").status_code == 404  # only Prometheus, on the private network
        assert client.get("/docs").status_code == 200  # Swagger
    redirect = httpx.get(f"http://127.0.0.1:{stack['RAKUTEN_HTTP_PORT']}/docs", follow_redirects=False)
    assert redirect.status_code == 301
    assert redirect.headers["location"] == f"https://127.0.0.1:{stack['RAKUTEN_HTTPS_PORT']}/docs"


def test_prometheus_scrapes_the_api_and_loads_the_alert_rules(stack):
    base = f"http://127.0.0.1:{stack['RAKUTEN_PROMETHEUS_PORT']}/api/v1"

    def up():
        result = httpx.get(f"{base}/query", params={"query": 'up{job="rakuten-api"}'}, timeout=5).json()
        return [r for r in result["data"]["result"] if r["value"][1] == "1"]

    series = wait_until(
        lambda: len(found := up()) == 3 and found, "Prometheus to see the writer and 2 replicas up", timeout=90
    )
    assert sorted(s["metric"]["role"] for s in series) == ["predict", "predict", "writer"]
    groups = httpx.get(f"{base}/rules", timeout=5).json()["data"]["groups"]
    names = {rule["name"] for group in groups for rule in group["rules"]}
    assert names == shipped_alert_names()  # every rule file the compose config lists, loaded


def shipped_alert_names() -> set[str]:
    folder = ROOT / "deployments" / "prometheus"
    files = yaml.safe_load((folder / "prometheus-compose.yml").read_text())["rule_files"]
    groups = [group for name in files for group in yaml.safe_load((folder / name).read_text())["groups"]]
    names = {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}
    assert {"RakutenApiDown", "RakutenDriftPage", "RakutenLiveAccuracyBelowHoldout"} <= names
    return names


def test_the_monitor_scores_the_drift_of_what_the_api_answered(stack):
    """A pool-only window through nginx: the monitor (every 15 s here) logs a high class drift to Prometheus."""
    window = [
        {"designation": f"Piscine tubulaire Intex {i} m", "description": "Avec pompe et bâche"} for i in range(120)
    ]
    with api(stack) as client:
        headers = login(client, "bob")
        for start in range(0, len(window), 60):
            assert client.post("/predict", headers=headers, json=window[start : start + 60]).status_code == 200
    base = f"http://127.0.0.1:{stack['RAKUTEN_PROMETHEUS_PORT']}/api/v1"

    def scored():
        query = (
            'rakuten_drift_effect{job="rakuten-monitor", signal="predicted_class", window="day"} and on (instance) '
            'rakuten_drift_window_products{window="day"} >= 120'
        )
        result = httpx.get(f"{base}/query", params={"query": query}, timeout=5).json()["data"]["result"]
        return [float(r["value"][1]) for r in result if r["value"][1] != "NaN"]

    (score,) = wait_until(scored, "Prometheus to scrape the monitor's drift of the window", timeout=240)
    assert score > 0.5


def test_ingest_and_train_survive_a_restart_and_go_with_the_volumes(stack):
    rows = (
        "designation,description,prdtypecode\n"
        + "".join(
            f"Robot nettoyeur de piscine modele {i},<p>Aspirateur de fond pour piscine hors sol</p>,2583\n"
            for i in range(30)
        )
        + "<p></p>,Livre sans titre,10\n"  # no designation once HTML is stripped: left out, listed
    )
    with api(stack) as client:
        headers = login(client, "alice")
        before = client.get("/info", headers=headers).json()
        ingested = client.post("/ingest", headers=headers, files={"file": ("new.csv", rows.encode())})
        assert ingested.status_code == 200, ingested.text
        report = ingested.json()
        assert (report["accepted"], report["rejected"]) == (30, 1)
        assert report["data_md5"] != before["data"]["md5"]
        started = client.post("/train", headers=headers)
        assert started.status_code == 202, started.text

        def finished():
            job = client.get(started.json()["status_url"], headers=headers).json()
            return job if job["status"] != "running" else None

        job = wait_until(finished, "the training run", timeout=900)
        assert job["status"] == "succeeded", job
        after = client.get("/info", headers=headers).json()
        assert after["model"]["md5"] != before["model"]["md5"]
        assert after["data"]["md5"] == report["data_md5"]

        def every_replica_serves_it():  # nginx takes turns over the replicas: each answers some of these
            answers = [
                client.post("/predict", headers=headers, json={"designation": "Robot de piscine"}).json()
                for _ in range(8)
            ]
            return all(answer["model_version"] == after["model"]["md5"] for answer in answers)

        wait_until(every_replica_serves_it, "both replicas to serve the new model", timeout=30)

    make("docker-down", stack["env"], timeout=300)
    make("docker-up", stack["env"], timeout=600, label="docker-up (volumes kept, to healthy)")
    with api(stack) as client:
        headers = login(client, "alice")
        again = client.get("/info", headers=headers).json()
        assert again["model"]["loaded_md5"] == after["model"]["md5"]
        assert again["data"]["md5"] == report["data_md5"]
        assert (
            client.post("/predict", headers=headers, json={"designation": "Robot nettoyeur de piscine"}).json()[
                "model_version"
            ]
            == after["model"]["md5"]
        )

    engine, env = stack["engine"], stack["env"]
    volumes = [engine, "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={stack['name']}"]
    assert subprocess.run(volumes, env=env, capture_output=True, text=True).stdout.split()
    make("docker-down-v", env, timeout=300)
    assert subprocess.run(volumes, env=env, capture_output=True, text=True).stdout.split() == []
