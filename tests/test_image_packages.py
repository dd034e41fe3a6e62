"""Every package the container images install can still be installed today, at the version it asks for,
checked against Debian's mirror and PyPI as they are now, never against a build cache. An image layer cached
on one machine hides a version that has vanished upstream; a new machine's build then fails. These checks
take seconds: apt resolves the Dockerfiles' packages in a private, empty apt state built from
docker/debian.sources.list (the base image's sources), and pip resolves all of requirements.lock."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, needs

DOCKERFILES = sorted((ROOT / "docker").glob("*/Dockerfile"))
SOURCES = ROOT / "docker" / "debian.sources.list"


def apt_packages(dockerfile_text: str) -> list[str]:
    """The arguments of every `apt-get install` in a Dockerfile (`name` or `name=version`), flags left out."""
    joined = re.sub(r"\\\n", " ", dockerfile_text)
    packages = []
    for command in re.findall(r"apt-get install ([^&;|\n]*)", joined):
        packages += [word for word in command.split() if not word.startswith("-")]
    return packages


def test_apt_packages_are_read_from_a_dockerfile():
    text = (
        "RUN apt-get update \\\n    && apt-get install -y --no-install-recommends \\\n        nginx=1.2-3 curl \\\n"
        "    && rm -rf /var/lib/apt/lists/*\nRUN apt-get install -y git\n"
    )
    assert apt_packages(text) == ["nginx=1.2-3", "curl", "git"]


@pytest.fixture(scope="module")
def apt(tmp_path_factory):
    """apt-get on an empty system whose only sources are the base image's: runs `apt-get update` once."""
    needs("apt-get")
    root = tmp_path_factory.mktemp("apt")
    for folder in ("lists/partial", "cache/archives/partial", "parts", "preferences"):
        (root / folder).mkdir(parents=True)
    (root / "status").write_text("")
    options = {
        "Dir::Etc::SourceList": SOURCES,
        "Dir::Etc::SourceParts": root / "parts",
        "Dir::Etc::PreferencesParts": root / "preferences",
        "Dir::Etc::Preferences": root / "preferences.none",
        "Dir::State::Lists": root / "lists",
        "Dir::State::status": root / "status",
        "Dir::Cache": root / "cache",
        "Debug::NoLocking": "true",
        "APT::Sandbox::User": "root",
        "Dir::Etc::TrustedParts": "/etc/apt/trusted.gpg.d",
    }

    def run(*args: str) -> subprocess.CompletedProcess:
        command = ["apt-get", "-q"] + [f"-o{key}={value}" for key, value in options.items()] + list(args)
        return subprocess.run(command, capture_output=True, text=True, timeout=600)

    updated = run("update")
    assert updated.returncode == 0, updated.stdout + updated.stderr
    return run


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_every_debian_package_of_an_image_is_installable(apt, dockerfile):
    packages = apt_packages(dockerfile.read_text())
    assert packages, f"{dockerfile} installs no Debian package"
    result = apt("install", "--simulate", "--no-install-recommends", *packages)
    assert result.returncode == 0, (
        f"{dockerfile.relative_to(ROOT)}: {' '.join(packages)}\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
    )


def test_a_vanished_debian_revision_is_caught(apt):
    # The pin that broke a new machine's build: Debian had moved on to 1.22.1-9+deb12u12.
    result = apt("install", "--simulate", "--no-install-recommends", "nginx=1.22.1-9+deb12u11")
    assert result.returncode != 0
    assert "Version '1.22.1-9+deb12u11' for 'nginx' was not found" in result.stderr


@pytest.mark.slow
def test_every_python_package_of_the_lock_is_installable(tmp_path: Path):
    # A full resolution of the lock as pip sees it today (the API image installs it as constraints):
    # every pinned version exists for this interpreter and platform, and the pins agree with each other.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--disable-pip-version-check",
            "--report",
            str(tmp_path / "report.json"),
            "-r",
            str(ROOT / "requirements.lock"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    def canonical(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    locked = {
        canonical(name): version
        for name, version in (
            line.split("==") for line in (ROOT / "requirements.lock").read_text().split() if "==" in line
        )
    }
    report = json.loads((tmp_path / "report.json").read_text())
    resolved = {canonical(item["metadata"]["name"]): item["metadata"]["version"] for item in report["install"]}
    assert resolved == locked  # nothing missing from the lock, nothing resolved to another version
    assert "setuptools" in locked  # the API image's build backend comes from the lock too
