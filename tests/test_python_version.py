"""The supported Pythons: pyproject.toml and the Makefile agree, make refuses any other saying how to get
one, rebuilds a .venv made by another, and every supported interpreter on this machine writes the same
model bytes (the pickles are what once tied the project to one version: core/atomic.py says why)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mlops_rakuten.devtools.locked_requirements import format_lock, parse_lock

from conftest import ROOT, run


def supported() -> list[str]:
    match = re.search(r"(?m)^SUPPORTED_PYTHONS := (.+)$", (ROOT / "Makefile").read_text())
    assert match, "Makefile: no SUPPORTED_PYTHONS"
    return match.group(1).split()


def fake_python(folder: Path, version: str) -> Path:
    """A stand-in interpreter that answers make's version question as Python ``version`` would."""
    python = folder / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f"#!/bin/sh\necho {version}\n")
    python.chmod(0o755)
    return python


def test_requires_python_is_the_range_make_enforces_and_holds_the_running_one():
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    versions = supported()
    major, last = versions[-1].split(".")
    assert requires == f">={versions[0]},<{major}.{int(last) + 1}"
    assert versions == [f"3.{minor}" for minor in range(int(versions[0][2:]), int(last) + 1)], "no gap in the range"
    assert "%d.%d" % sys.version_info[:2] in versions


@pytest.mark.parametrize("version", ["3.10", "3.14"])
def test_make_refuses_another_python_saying_how_to_get_a_supported_one(tmp_path: Path, version: str):
    venv = fake_python(tmp_path / "venv", version).parent.parent
    result = run(["make", "--no-print-directory", "python-version", f"VENV={venv}"], ROOT, check=False)
    assert result.returncode != 0
    assert f"is Python {version}: this project supports Python {' '.join(supported())}" in result.stderr
    for way in ("pyenv install", "uv python install", "deadsnakes", "make run PYTHON="):
        assert way in result.stderr
    assert run(["make", "--no-print-directory", "python-version"], ROOT).returncode == 0


def test_make_refuses_an_unsupported_python_before_creating_the_venv(tmp_path: Path):
    python = fake_python(tmp_path / "old", "3.10")
    venv = tmp_path / "venv"
    result = run(["make", "--no-print-directory", "setup", f"VENV={venv}", f"PYTHON={python}"], ROOT, check=False)
    assert result.returncode != 0 and "is Python 3.10" in result.stderr
    assert not venv.exists(), "nothing is left behind to remove"


def test_make_setup_with_another_python_rebuilds_the_venv(tmp_path: Path):
    """A .venv whose interpreter is another version is replaced, not refused until `make clean`.

    A copy of the Makefile with a lock of setuptools alone (the build backend, with its hashes) and a
    one-module project keeps the install to seconds."""
    project = tmp_path / "project"
    (project / "docker").mkdir(parents=True)
    shutil.copy2(ROOT / "Makefile", project / "Makefile")
    shutil.copy2(ROOT / "docker" / "containers.mk", project / "docker" / "containers.mk")
    backend = parse_lock((ROOT / "requirements.lock").read_text())["setuptools"]
    (project / "requirements.lock").write_text(format_lock({"setuptools": backend}))
    (project / "pyproject.toml").write_text(
        '[project]\nname = "tiny"\nversion = "0"\n[tool.setuptools]\npy-modules = []\n'
    )
    stale = fake_python(project / ".venv", "3.10")
    # An outer `make test PYTHON=...` would pass its variables down in MAKEFLAGS.
    alone = {"MAKEFLAGS": "", "MFLAGS": ""}
    done = run(["make", "--no-print-directory", "setup", f"PYTHON={sys.executable}"], project, check=False, env=alone)
    assert done.returncode == 0, done.stderr
    assert f"rebuilding .venv: it runs Python 3.10, PYTHON={sys.executable} is Python" in done.stdout
    answer = run([str(stale), "-c", "import sys; print(sys.version_info[:2])"], project).stdout
    assert answer.strip() == str(tuple(sys.version_info[:2]))
    # Without PYTHON= on the command line, an existing .venv is kept as it is.
    stale.unlink()
    stale.symlink_to(fake_python(tmp_path / "other", "3.10"))
    kept = run(["make", "--no-print-directory", "setup"], project, check=False, env=alone)
    assert "rebuilding" not in kept.stdout and stale.is_symlink()


def interpreters() -> dict[str, str]:
    """Supported version -> an interpreter of it on this machine (PATH, then pyenv's versions)."""
    found = {}
    pyenv_versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for version in supported():
        candidates = [shutil.which(f"python{version}")] + sorted(
            str(path / "bin" / "python") for path in pyenv_versions.glob(f"{version}.*")
        )
        for candidate in filter(None, candidates):
            done = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
            )
            if done.returncode == 0 and done.stdout.strip() == version:
                found[version] = candidate
                break
    return found


# What the featurize and train stages import, at the versions requirements.lock pins.
STAGE_PACKAGES = ["numpy", "scipy", "scikit-learn", "pandas", "joblib", "PyYAML", "threadpoolctl"]


def stage_venv(python: str, folder: Path) -> Path:
    run([python, "-m", "venv", str(folder)], ROOT)
    installer = ROOT / "src/mlops_rakuten/devtools/locked_requirements.py"
    run(
        [str(folder / "bin" / "python"), str(installer), "install", str(ROOT / "requirements.lock"), *STAGE_PACKAGES],
        ROOT,
    )
    return folder / "bin" / "python"


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_every_supported_python_writes_the_same_vectorizer_features_and_models(project: Path, tmp_path: Path):
    """featurize and train, run by each supported interpreter installed here on the same split, write
    byte-identical files (the GitHub workflow's matrix diffs a whole dvc.lock the same way)."""
    found = interpreters()
    others = {version: python for version, python in found.items() if version != "%d.%d" % sys.version_info[:2]}
    if not others:
        pytest.skip(f"no other supported Python ({', '.join(supported())}) on this machine to compare with")
    run(["dvc", "repro", "split"], project)
    outputs: dict[str, dict[str, str]] = {}
    for version, python in {"%d.%d" % sys.version_info[:2]: sys.executable, **others}.items():
        if python != sys.executable:
            python = str(stage_venv(python, tmp_path / f"venv{version}"))
        out = tmp_path / f"out{version}"
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        featurize = [
            python,
            "-m",
            "mlops_rakuten.stages.featurize",
            "--params",
            "params.yaml",
            "--train",
            "data/split/train.csv",
            "--test",
            "data/split/test.csv",
            "--train-out",
            f"{out}/train.joblib",
            "--test-out",
            f"{out}/test.joblib",
            "--vectorizer-out",
            f"{out}/vectorizer.joblib",
        ]
        train = [
            python,
            "-m",
            "mlops_rakuten.stages.train",
            "--params",
            "params.yaml",
            "--features",
            f"{out}/train.joblib",
            "--test-features",
            f"{out}/test.joblib",
            "--vectorizer",
            f"{out}/vectorizer.joblib",
            "--holdout-out",
            f"{out}/holdout_model.joblib",
            "--out",
            f"{out}/model.joblib",
        ]
        run(featurize, project, env=env)
        run(train, project, env=env)
        outputs[version] = {path.name: md5(path) for path in sorted(out.iterdir())}
    first, *rest = outputs.items()
    assert len(first[1]) == 5
    for version, hashes in rest:
        assert hashes == first[1], f"Python {version} wrote other bytes than Python {first[0]}"
