"""The split shape on one machine: one writer and two predict replicas of one project, nginx routing
the writer's own routes (/ingest, /train, /retrain) to the writer and the rest to the replicas.

Real `rakuten serve --role ...` processes, Debian's nginx, a real `dvc repro` through /train. The
module owns its project (it trains it): tests run in file order.
"""

from __future__ import annotations

import re
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from mlops_rakuten.serve import roles

from conftest import ROOT, needs, run
from serve_support import (
    PASSWORDS,
    auth,
    build_project,
    free_port,
    make_settings,
    render,
    self_signed,
    server_env,
    stop,
    wait_until,
)

pytestmark = pytest.mark.server

RAKUTEN = str(Path(sys.executable).parent / "rakuten")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """{"writer": url, "replicas": [url, url], "nginx": url, "nginx_log", "settings", "context"}; all stopped at the end.

    nginx sends to the writer and to the first replica only, so its access log says which one answered.
    """
    root = tmp_path_factory.mktemp("roles")
    settings = make_settings(build_project(root / "project"), root / "secrets")
    processes, urls = [], {}
    try:
        for name, role in (("writer", "writer"), ("replica-1", "predict"), ("replica-2", "predict")):
            port, log = free_port(), root / f"{name}.log"
            with open(log, "w") as output:
                processes.append(
                    subprocess.Popen(
                        [RAKUTEN, "serve", "--port", str(port), "--role", role],
                        env=server_env(settings),
                        stdout=output,
                        stderr=subprocess.STDOUT,
                    )
                )
            urls[name] = f"http://127.0.0.1:{port}"
            wait_until(
                lambda name=name: httpx.get(f"{urls[name]}/health", timeout=2).json()["model_ready"],
                f"{name} to serve",
                process=processes[-1],
                log=log,
            )
        prefix = root / "nginx"
        prefix.mkdir()
        cert, key = self_signed(prefix)
        https_port = free_port()
        (prefix / "nginx.conf").write_text(
            render(
                (ROOT / "deployments/nginx/nginx.conf").read_text(),
                {
                    "RAKUTEN_UPSTREAM": urls["replica-1"].removeprefix("http://"),
                    "RAKUTEN_WRITER_UPSTREAM": urls["writer"].removeprefix("http://"),
                    "RAKUTEN_HTTPS_PORT": str(https_port),
                    "RAKUTEN_HTTP_PORT": str(free_port()),
                    "RAKUTEN_TLS_CERT": str(cert),
                    "RAKUTEN_TLS_KEY": str(key),
                },
            )
        )
        with open(prefix / "nginx.out", "w") as output:
            processes.append(
                subprocess.Popen(
                    [needs("nginx"), "-p", str(prefix), "-c", "nginx.conf", "-e", "stderr", "-g", "daemon off;"],
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            )
        context = ssl.create_default_context(cafile=str(cert))
        nginx = f"https://127.0.0.1:{https_port}"
        wait_until(
            lambda: httpx.get(f"{nginx}/health", verify=context, timeout=2).is_success,
            "nginx",
            process=processes[-1],
            log=prefix / "nginx.out",
        )
        yield {
            "writer": urls["writer"],
            "replicas": [urls["replica-1"], urls["replica-2"]],
            "nginx": nginx,
            "nginx_log": prefix / "access.log",
            "settings": settings,
            "context": context,
        }
    finally:
        for process in processes:
            stop(process)


def test_nginx_sends_to_the_writer_what_the_route_table_makes_the_writers():
    config = (ROOT / "deployments/nginx/nginx.conf").read_text()
    writer_locations = re.findall(r"location ~ (\S+) \{[^}]*?proxy_pass http://rakuten_writer;", config)
    assert writer_locations == [roles.nginx_writer_location()], (
        f"deployments/nginx/nginx.conf: the writer's location must be {roles.nginx_writer_location()} "
        f"(serve/roles.py's route table), found {writer_locations}"
    )


def test_every_route_of_the_api_reaches_its_role_through_nginx(stack):
    """Each route of the writer's and the replica's OpenAPI documents, sent through the shipped nginx.

    A route only the writer's document has must be answered by the writer, any other by the replica; the
    request carries no token, so the app answers from its guard (401) or the route itself, never 404.
    """
    writer, replica = stack["writer"], stack["replicas"][0]
    documents = {url: httpx.get(f"{url}/openapi.json", timeout=10).json()["paths"] for url in (writer, replica)}
    routes = sorted(
        {(method.upper(), path) for paths in documents.values() for path, item in paths.items() for method in item}
    )
    assert {("POST", "/retrain"), ("GET", "/retrain/{job_id}"), ("POST", "/predict")} <= set(routes)
    probes = {}
    with httpx.Client(base_url=stack["nginx"], verify=stack["context"], timeout=30) as api:
        for number, (method, path) in enumerate(routes):
            probe = f"routing-probe-{number}"
            answer = api.request(method, re.sub(r"\{\w+\}", "0123456789abcdef", path), params={"probe": probe})
            probes[probe] = (method, path, answer.status_code)
    lines = stack["nginx_log"].read_text().splitlines()
    wrong = []
    for probe, (method, path, status) in probes.items():
        line = next(line for line in lines if f"probe={probe} " in line)
        answered_by = line.rsplit("upstream=", 1)[1].strip()
        expected = writer if path not in documents[replica] else replica
        if f"http://{answered_by}" != expected or status == 404:
            wrong.append(f"{method} {path}: {status} from {answered_by}, expected {expected}")
    assert not wrong, "\n".join(wrong)


def model_version(url: str, headers: dict, **options) -> str:
    answer = httpx.post(
        f"{url}/predict", json={"designation": "Piscine hors sol"}, headers=headers, timeout=10, **options
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["model_version"]


def test_each_role_serves_only_its_routes(stack):
    admin = auth(stack["settings"], "alice", "admin")
    for replica in stack["replicas"]:
        assert httpx.post(f"{replica}/train", headers=admin).status_code == 404
        assert httpx.post(f"{replica}/ingest", headers=admin).status_code == 404
    assert httpx.post(f"{stack['writer']}/predict", json={"designation": "x"}, headers=admin).status_code == 404
    for url in (stack["writer"], *stack["replicas"]):
        assert httpx.get(f"{url}/info", headers=admin).json()["model"]["ready"] is True


def test_a_token_from_one_replica_works_everywhere_and_its_revocation_too(stack):
    first, second = stack["replicas"]
    login = httpx.post(f"{first}/token", data={"username": "bob", "password": PASSWORDS["bob"]})
    assert login.status_code == 200, login.text
    bob = {"Authorization": f"Bearer {login.json()['access_token']}"}
    model_version(second, bob)
    assert httpx.get(f"{stack['writer']}/info", headers=bob).status_code == 200
    users = {**server_env(stack["settings"])}
    run([RAKUTEN, "user", "deactivate", "bob"], stack["settings"].project_dir, env=users)
    try:
        for url in (first, second, stack["writer"]):
            wait_until(
                lambda url=url: httpx.get(f"{url}/info", headers=bob).status_code == 401,
                f"{url} to refuse the revoked token",
                timeout=10,
            )
    finally:
        run(
            [RAKUTEN, "user", "add", "bob", "--role", "user", "--password-stdin"],
            stack["settings"].project_dir,
            env=users,
            input=PASSWORDS["bob"] + "\n",
        )


def test_a_model_trained_by_the_writer_reaches_every_replica(stack):
    settings, admin = stack["settings"], auth(stack["settings"], "alice", "admin")
    old = {model_version(url, admin) for url in stack["replicas"]}
    params = settings.project_dir / "params.yaml"
    params.write_text(re.sub(r"(?m)^  C: .*$", "  C: 0.3", params.read_text()))
    started = httpx.post(f"{stack['nginx']}/train", headers=admin, verify=stack["context"], timeout=30)
    assert started.status_code == 202, started.text  # nginx sent it to the writer
    job = started.json()["job_id"]

    def finished():
        state = httpx.get(f"{stack['nginx']}/train/{job}", headers=admin, verify=stack["context"]).json()
        return state if state["status"] != "running" else None

    state = wait_until(finished, "the training run", timeout=600)
    assert state["status"] == "succeeded", state["log"]
    new = state["model_md5"]
    assert {new} != old
    for url in stack["replicas"]:
        wait_until(lambda url=url: model_version(url, admin) == new, f"{url} to serve the new model", timeout=10)
    assert model_version(stack["nginx"], admin, verify=stack["context"]) == new


def _snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    return {path.name: (s.st_ino, s.st_mtime_ns, s.st_size) for path in folder.iterdir() if (s := path.stat())}


def test_reload_on_a_replica_writes_only_its_own_state_folder(stack, tmp_path):
    """The container stack mounts the writer's state folder read-only in each replica: /reload must not write there."""
    settings, admin = stack["settings"], auth(stack["settings"], "alice", "admin")
    served = model_version(stack["replicas"][0], admin)
    writer_state, own_state = tmp_path / "writer-state", tmp_path / "replica-state"
    writer_state.mkdir()
    (writer_state / "model.published").write_text(served + "\n")  # what the writer's last /train wrote
    writer_state.chmod(0o555)  # read-only, as mounted (root writes anyway: the snapshot below tells)
    before = _snapshot(writer_state)
    port, log = free_port(), tmp_path / "replica.log"
    env = {**server_env(settings), "RAKUTEN_STATE_DIR": str(own_state), "RAKUTEN_WRITER_STATE_DIR": str(writer_state)}
    with open(log, "w") as output:
        replica = subprocess.Popen(
            [RAKUTEN, "serve", "--port", str(port), "--role", "predict"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: httpx.get(f"{url}/health", timeout=2).json()["model_ready"], "the replica", process=replica, log=log
        )
        reloaded = httpx.post(f"{url}/reload", headers=admin, timeout=120)
        assert reloaded.status_code == 200, reloaded.text
        assert reloaded.json()["md5"] == served == model_version(url, admin)
    finally:
        stop(replica)
        writer_state.chmod(0o755)
    assert _snapshot(writer_state) == before, "the replica wrote into the writer's state folder"
    # Its own workers learn of the reload from its own marker; the crash fallback is its own copy too.
    assert (own_state / "model.published").read_text().strip() == served
    assert (own_state / "last-good-model.joblib").is_file()
