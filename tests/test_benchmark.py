"""make bench's real-like data: the real sample replicated to full size, skipped cleanly when absent."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from mlops_rakuten.core.demo_data import write_demo_data
from mlops_rakuten.core.paths import X_FILE, Y_FILE
from mlops_rakuten.devtools.benchmark import main, replicate_sample
from mlops_rakuten.devtools.crossval import load_products

from conftest import ROOT

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def read(folder: Path, name: str) -> pd.DataFrame:
    frame = pd.read_csv(folder / name, index_col=0, keep_default_na=False, dtype=str)
    frame.index = frame.index.astype(int)
    return frame


def test_replicated_sample_has_the_asked_rows_each_copy_marked_in_its_title(tmp_path: Path):
    sample, big = tmp_path / "sample", tmp_path / "big"
    sample.mkdir()
    big.mkdir()
    write_demo_data(sample, rows=300, seed=2)
    replicate_sample(sample, big, rows=1000)
    x, y, big_x, big_y = read(sample, X_FILE), read(sample, Y_FILE), read(big, X_FILE), read(big, Y_FILE)
    assert big_x.index.tolist() == big_y.index.tolist() == list(range(1000))
    for row in (0, 299, 300, 731, 999):
        suffix = f" n°{row // 300}" if row >= 300 else ""
        assert big_x.loc[row, "designation"] == x.iloc[row % 300]["designation"] + suffix
        assert big_x.loc[row, "description"] == x.iloc[row % 300]["description"]
        assert big_y.loc[row, "prdtypecode"] == y.iloc[row % 300]["prdtypecode"]
    # Copies are not duplicates of each other: preprocess drops no more per copy than in the sample.
    dropped = 300 - len(load_products(sample, PARAMS["preprocess"]))
    assert len(load_products(big, PARAMS["preprocess"])) >= 1000 - 4 * dropped


def test_real_like_data_is_skipped_without_the_sample(tmp_path: Path, capsys):
    main(["--only", "real-like", "--sample", str(tmp_path / "absent")])
    assert "real-like data: skipped" in capsys.readouterr().out
