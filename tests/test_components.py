"""The one mechanism for tests that need a real component (tests/conftest.py): skipped with the
install hint when it is missing, listed in the end-of-run summary, failed under .ci/run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, STRICT_VARIABLE, needs, system_packages

TESTS = """
import pytest
from conftest import needs, unavailable

@pytest.mark.needs("no-such-command")
def test_marked():
    raise AssertionError("must not run without its command")

def test_called():
    assert needs("no-such-command")

def test_present():
    assert needs("sh")

def test_plain_skip():
    pytest.skip("nothing to do here")

def test_unusable():
    unavailable("containers cannot run here")
"""


def run_pytest(folder: Path, strict: bool) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != STRICT_VARIABLE}
    if strict:
        env[STRICT_VARIABLE] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(folder)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    """This conftest with two extra commands listed: one that exists, one that does not."""
    shutil.copy2(ROOT / "tests/conftest.py", tmp_path / "conftest.py")
    listed = (ROOT / "tests/system_packages.txt").read_text()
    (tmp_path / "system_packages.txt").write_text(listed + "no-such-command  no-such-package\nsh  dash\n")
    (tmp_path / "test_suite.py").write_text(TESTS)
    return tmp_path


def test_missing_component_skips_and_the_summary_says_why(suite: Path):
    result = run_pytest(suite, strict=False)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.split("skipped tests: 4")[1]
    hint = "no-such-command is not installed (apt-get install -y no-such-package; .ci/run installs it)"
    assert f"2 skipped because {hint}:\n    test_suite.py::test_called\n    test_suite.py::test_marked\n" in summary
    assert "1 skipped because nothing to do here:\n    test_suite.py::test_plain_skip\n" in summary
    assert "1 skipped because containers cannot run here:\n    test_suite.py::test_unusable\n" in summary
    assert "1 passed, 4 skipped" in result.stdout


def test_missing_component_fails_in_strict_mode(suite: Path):
    result = run_pytest(suite, strict=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"and {STRICT_VARIABLE}=1 requires every real component" in result.stdout
    assert "containers cannot run here, and" in result.stdout
    assert "2 failed, 1 passed, 1 skipped, 1 error" in result.stdout  # the marker fails in setup: an error


def test_an_unlisted_command_is_a_mistake_in_the_test():
    with pytest.raises(KeyError, match="system_packages.txt"):
        needs("ls")


def test_ci_installs_every_listed_package_and_turns_skips_into_failures(tmp_path: Path):
    for command in system_packages():
        needs(command)  # so that .ci/run below has nothing to install
    (tmp_path / "make").write_text(f'#!/bin/sh\necho "make $* with {STRICT_VARIABLE}=${STRICT_VARIABLE}"\n')
    (tmp_path / "make").chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", str(ROOT / ".ci/run")], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == [
        f"make test with {STRICT_VARIABLE}=1",
        f"make docker-test with {STRICT_VARIABLE}=1",
    ]
