"""The container files without running containers: hadolint on every Dockerfile, the compose file as
`docker compose config` / `podman-compose config` reads it, and the Prometheus alert rules under
`promtool test rules`. The running stack is tests/test_container_stack.py (`make docker-test`)."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from conftest import ROOT, needs

pytestmark = pytest.mark.container

DOCKERFILES = sorted((ROOT / "docker").glob("*/Dockerfile"))


def make(target: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", "--no-print-directory", target],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_every_image_has_a_dockerfile_from_the_base_image_argument():
    assert {path.parent.name for path in DOCKERFILES} == {"api-service", "nginx", "prometheus"}
    for path in DOCKERFILES:
        lines = [line.strip() for line in path.read_text().splitlines()]
        froms = [line for line in lines if line.startswith("FROM ")]
        assert froms == ["FROM ${BASE_IMAGE}"], path
        assert "ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim" in lines, path


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_dockerfile_passes_hadolint(dockerfile):
    # .hadolint.yaml says which rules are off and why (DL3008: Debian packages are pinned by suite).
    result = subprocess.run(
        [needs("hadolint"), "--config", str(ROOT / ".hadolint.yaml"), str(dockerfile)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_build_context_leaves_out_secrets_data_and_the_venv():
    # .dockerignore lists what goes in; a token (.dvc/config.local), a TLS key or data must never be there.
    rules = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert rules[0] == "*"
    included = [rule[1:] for rule in rules if rule.startswith("!")]
    for private in (".dvc/config.local", ".dvc/cache/", "data/raw/", "models/", "secrets/", ".venv/", ".git/"):
        name = private.rstrip("/")
        assert not any(name == rule.rstrip("/") or name.startswith(rule.rstrip("/") + "/") for rule in included), (
            private
        )
    assert "deployments/certs/" in rules  # re-excluded after !deployments/


@pytest.fixture(scope="module")
def compose_config(tmp_path_factory):
    """The compose file as the installed compose tool resolves it (make docker-config), with test values."""
    folder = tmp_path_factory.mktemp("compose")
    env = {
        "RAKUTEN_JWT_SECRET": "s" * 40,
        "RAKUTEN_USERS_FILE": str(folder / "users.json"),
        "RAKUTEN_TLS_DIR": str(folder),
        "RAKUTEN_HTTPS_PORT": "18443",
        "RAKUTEN_HTTP_PORT": "18080",
    }
    if make("compose-check", env).returncode != 0:  # neither docker compose nor podman + podman-compose
        needs("podman")
        needs("podman-compose")
    result = make("docker-config", env)
    assert result.returncode == 0, result.stdout + result.stderr
    return yaml.safe_load(result.stdout), env


def test_compose_file_is_valid_and_wires_the_stack(compose_config):
    config, env = compose_config
    services = config["services"]
    assert set(services) == {"writer", "predict", "nginx", "prometheus", "monitor"}
    for name, service in services.items():
        assert service["init"] is True, name
        assert service["healthcheck"]["test"], name
        if name != "predict":  # the replicas run the writer's image
            assert service["build"]["args"]  # BASE_IMAGE passed to every build
    assert services["predict"]["image"] == services["writer"]["image"]
    assert services["predict"]["depends_on"]["writer"]["condition"] == "service_healthy"
    for name in ("nginx", "prometheus"):
        assert services[name]["depends_on"]["predict"]["condition"] == "service_healthy"
    assert services["monitor"]["depends_on"]["writer"]["condition"] == "service_healthy"
    assert services["monitor"]["environment"]["RAKUTEN_RETRAIN_EVERY"] == ""  # scheduled retrain off by default
    assert services["monitor"]["image"] == services["writer"]["image"]  # the lean API image, nothing added
    # The replicas write the prediction log where the monitor reads it.
    log_dir = services["monitor"]["environment"]["RAKUTEN_PREDICTION_LOG_DIR"]
    assert services["predict"]["environment"]["RAKUTEN_PREDICTION_LOG_DIR"] == log_dir
    for name, role in (("writer", "writer"), ("predict", "predict")):
        environment = services[name]["environment"]
        assert environment["RAKUTEN_ROLE"] == role
        assert environment["RAKUTEN_JWT_SECRET"] == env["RAKUTEN_JWT_SECRET"]  # tokens valid on every replica
        assert "ports" not in services[name]  # the API is reached through nginx only
        # ... so the X-Forwarded-For nginx sets is believed: login limits per address see clients, not nginx
        assert environment["RAKUTEN_TRUSTED_PROXIES"] == "*"
    # Only the writer may change the project; the replicas read it.
    assert not any(str(v).endswith(":ro") for v in services["writer"]["volumes"])
    assert any(
        str(v).endswith("/var/lib/rakuten/project:ro") or "read_only" in str(v) for v in services["predict"]["volumes"]
    )
    assert int(services["predict"]["deploy"]["replicas"]) == 2
    published = [str(port) for port in services["nginx"]["ports"]]
    assert any("18443" in port and "127.0.0.1" in port for port in published), published
    assert config["secrets"]["users"]["file"] == env["RAKUTEN_USERS_FILE"]


def test_compose_refuses_to_start_without_the_jwt_secret(compose_config):
    _, env = compose_config
    result = make("docker-config", {**env, "RAKUTEN_JWT_SECRET": ""})
    assert result.returncode != 0
    assert "RAKUTEN_JWT_SECRET" in result.stdout + result.stderr


def test_alert_rules_pass_their_unit_tests():
    result = subprocess.run(
        [needs("promtool"), "test", "rules", str(ROOT / "tests/prometheus/alerts_test.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_compose_prometheus_config_loads_the_alert_rules():
    path = ROOT / "deployments/prometheus/prometheus-compose.yml"
    result = subprocess.run([needs("promtool"), "check", "config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    rule_files = yaml.safe_load(path.read_text())["rule_files"]
    assert f"{len(rule_files)} rule files found" in result.stdout + result.stderr
    assert {"alerts.yml", "drift-alerts.yml", "accuracy-alerts.yml"} <= set(rule_files)
    job = yaml.safe_load(path.read_text())["scrape_configs"][0]
    host_job = yaml.safe_load((ROOT / "deployments/prometheus/prometheus.yml").read_text())["scrape_configs"][0]
    assert job["job_name"] == host_job["job_name"] == "rakuten-api"  # the rules select this job
