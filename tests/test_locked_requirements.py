"""requirements.lock and its reader: every pin hashed, a subset resolved by pip keeps the lock's hashes."""

from __future__ import annotations

import pytest

from mlops_rakuten.devtools.locked_requirements import (
    canonical,
    file_version,
    format_lock,
    parse_lock,
    select,
    version_hashes,
)

from conftest import ROOT

A, B, C = "a" * 64, "b" * 64, "c" * 64


def test_every_locked_package_has_a_hash_so_make_setup_can_require_them():
    pins = parse_lock((ROOT / "requirements.lock").read_text())
    assert len(pins) > 100 and "scikit-learn" in pins and "setuptools" in pins
    assert [f"{name}=={version}" for name, version, hashes in pins.values() if not hashes] == []
    assert all(len(h) == 64 and int(h, 16) >= 0 for _, _, hashes in pins.values() for h in hashes)


def test_the_lock_reads_back_as_written():
    pins = {"scikit-learn": ("scikit-learn", "1.9.1", [B, A]), "pyyaml": ("PyYAML", "6.0.4", [C])}
    text = format_lock(pins)
    assert "PyYAML==6.0.4 \\\n    --hash=sha256:" + C in text
    assert parse_lock(text) == {"scikit-learn": ("scikit-learn", "1.9.1", [A, B]), "pyyaml": ("PyYAML", "6.0.4", [C])}


def test_a_line_that_is_not_a_pin_is_an_error_naming_it():
    with pytest.raises(SystemExit, match="requirement 2: expected NAME==VERSION, got 'numpy>=2'"):
        parse_lock("six==1.17.0\nnumpy>=2\n")


@pytest.mark.parametrize(
    ("filename", "version"),
    [
        ("numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl", "2.4.6"),
        ("antlr4-python3-runtime-4.9.3.tar.gz", "4.9.3"),
        ("zc.lockfile-4.0.zip", "4.0"),
        ("joblib-0.10.0-py3.5.egg", None),
    ],
)
def test_the_version_comes_from_wheel_and_sdist_names_only(filename: str, version: str | None):
    assert file_version(filename) == version


def test_only_the_pinned_release_files_are_hashed():
    files = [
        {"filename": "six-1.17.0-py2.py3-none-any.whl", "hashes": {"sha256": B}},
        {"filename": "six-1.17.0.tar.gz", "hashes": {"sha256": A}},
        {"filename": "six-1.16.0.tar.gz", "hashes": {"sha256": C}},
        {"filename": "six-1.17.0.tar.gz.asc", "hashes": {"sha256": C}},
    ]
    assert version_hashes(files, "1.17.0") == [A, B]


def test_a_subset_keeps_the_lock_hashes_and_refuses_a_release_the_lock_does_not_pin():
    pins = parse_lock(
        f"numpy==2.4.6 --hash=sha256:{A}\nsix==1.17.0 --hash=sha256:{B}\nPyYAML==6.0.4 --hash=sha256:{C}\n"
    )
    report = {"install": [{"metadata": {"name": "PyYAML", "version": "6.0.4"}}]}
    assert select(pins, report) == {"pyyaml": ("PyYAML", "6.0.4", [C])}
    report["install"].append({"metadata": {"name": "numpy", "version": "2.5.0"}})
    with pytest.raises(SystemExit, match="pip resolved numpy==2.5.0, requirements.lock pins numpy==2.4.6"):
        select(pins, report)
    assert canonical("Zc.Lock__File") == "zc-lock-file"
