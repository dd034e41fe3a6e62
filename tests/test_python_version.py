"""One supported Python: pyproject.toml and the Makefile agree, and make refuses any other version."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from conftest import ROOT, run


def makefile_version() -> str:
    match = re.search(r"(?m)^PYTHON_VERSION := (\S+)$", (ROOT / "Makefile").read_text())
    assert match, "Makefile: no PYTHON_VERSION"
    return match.group(1)


def test_requires_python_is_the_version_make_enforces_and_the_one_running():
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == f"~={makefile_version()}.0"
    assert "%d.%d" % sys.version_info[:2] == makefile_version()


def test_make_refuses_another_python_saying_which_to_install(tmp_path: Path):
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\necho 3.13\n")  # answers the version question as Python 3.13 would
    python.chmod(0o755)
    result = run(["make", "--no-print-directory", "python-version", f"VENV={python.parent.parent}"], ROOT, check=False)
    assert result.returncode != 0
    assert f"is Python 3.13: this project supports Python {makefile_version()} only" in result.stderr
    assert f"make run PYTHON=python{makefile_version()}" in result.stderr
    assert run(["make", "--no-print-directory", "python-version"], ROOT).returncode == 0
