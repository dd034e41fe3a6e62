"""core/paths.py names what dvc.yaml writes, and params are flattened one way everywhere."""

from __future__ import annotations

import yaml

from mlops_rakuten.core import paths
from mlops_rakuten.core.params import flatten_params

from conftest import ROOT

PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())


def _names(entries: list) -> set[str]:
    return {next(iter(entry)) if isinstance(entry, dict) else entry for entry in entries}


def test_paths_are_the_ones_dvc_yaml_names():
    stages = PIPELINE["stages"]
    assert f"{paths.RAW_DIR}/{paths.X_FILE}" in stages["ingest"]["cmd"]
    assert f"{paths.RAW_DIR}/{paths.Y_FILE}" in stages["ingest"]["cmd"]
    assert paths.RAW_DIR in stages["ingest"]["deps"]
    assert (ROOT / paths.RAW_POINTER).is_file()
    assert _names(stages["check_params"]["params"]) == {paths.PARAMS}
    assert PIPELINE["artifacts"]["rakuten-classifier"]["path"] == paths.MODEL
    assert {paths.MODEL, paths.HOLDOUT_MODEL} == set(stages["train"]["outs"])
    assert {paths.METRICS, paths.CLASS_METRICS} == _names(stages["evaluate"]["metrics"])
    assert paths.CONFUSION_PLOT in _names(stages["evaluate"]["plots"])


def test_flatten_params_gives_dotted_keys_in_file_order():
    tree = yaml.safe_load("model:\n  C: 0.5\n  solver: newton\ningest:\n  fraction: 1.0\nempty: {}\nseed: 1\n")
    assert list(flatten_params(tree).items()) == [
        ("model.C", 0.5),
        ("model.solver", "newton"),
        ("ingest.fraction", 1.0),
        ("seed", 1),
    ]
    assert flatten_params(None) == {} and flatten_params([1, 2]) == {}
