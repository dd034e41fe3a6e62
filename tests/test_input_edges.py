"""The edges of input checking that a mutation probe found untested: open bounds, booleans posing
as numbers, and every line break and NUL that ingest normalises."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.params import read_params
from mlops_rakuten.ops.upload import normalise_line_breaks

from conftest import ROOT

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def _read_with(tmp_path: Path, section: str, key: str, value: object) -> dict:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({**PARAMS, section: {**PARAMS[section], key: value}}))
    return read_params(path, section)


@pytest.mark.parametrize(
    ("section", "key"), [("model", "C"), ("model", "tol"), ("ingest", "fraction"), ("split", "test_size")]
)
def test_open_lower_bounds_reject_zero_and_accept_just_above(tmp_path: Path, section: str, key: str):
    with pytest.raises(InputError, match=rf"{section}\.{key} = 0, expected a number in \(0, "):
        _read_with(tmp_path, section, key, 0)
    assert _read_with(tmp_path, section, key, 1e-9)[key] == 1e-9


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("model", "C"),
        ("model", "tol"),
        ("ingest", "fraction"),
        ("split", "test_size"),
        ("model", "max_iter"),
        ("model", "n_jobs"),
        ("featurize", "word_min_df"),
        ("featurize", "word_max_features"),
    ],
)
@pytest.mark.parametrize("flag", [True, False])
def test_booleans_are_not_numbers(tmp_path: Path, section: str, key: str, flag: bool):
    # Values are shown as YAML writes them (true, false), as in params.yaml.
    with pytest.raises(InputError, match=rf"{section}\.{key} = {str(flag).lower()}, expected "):
        _read_with(tmp_path, section, key, flag)


@pytest.mark.parametrize("character", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"])
def test_ingest_turns_every_other_line_break_into_a_space(character: str):
    assert normalise_line_breaks(f"un{character}deux") == "un deux"


def test_ingest_makes_carriage_returns_newlines_and_drops_nul():
    assert normalise_line_breaks("a\r\nb\rc\nd") == "a\nb\nc\nd"
    assert normalise_line_breaks("nul\x00 gone\x00") == "nul gone"
