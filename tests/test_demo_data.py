"""The built-in demo dataset: challenge file format, determinism and realistic statistics."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import mlops_rakuten
from mlops_rakuten.core.categories import CLASSES, CODES
from mlops_rakuten.core.demo_data import DESCRIBED, MIN_ROWS, TERSE, class_counts, generate, write_demo_data
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.paths import X_FILE, Y_FILE

# sha256 of the two files for rows=500, seed=7. Changing the generator changes these on purpose:
# the demo data is a pipeline input, so any change must be deliberate and show up in review.
PINNED = {
    X_FILE: "6e2b2213b10d534324333cfd2b6fc6e3db41a7be09c41c5faede7903d31644f3",
    Y_FILE: "0f46051d42a36516ddbd3d3f4266008ff05e759bf66d531dc6175d7300b37bb7",
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hashes(folder: Path) -> dict[str, str]:
    return {name: sha256(folder / name) for name in (X_FILE, Y_FILE)}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    write_demo_data(folder, rows=2000, seed=3)
    return folder


@pytest.fixture(scope="module")
def frames(demo) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_csv(demo / X_FILE, index_col=0), pd.read_csv(demo / Y_FILE, index_col=0)


def test_pinned_bytes(tmp_path):
    write_demo_data(tmp_path, rows=500, seed=7)
    assert hashes(tmp_path) == PINNED


def test_same_arguments_give_identical_bytes(tmp_path):
    write_demo_data(tmp_path / "a", rows=700, seed=11)
    write_demo_data(tmp_path / "b", rows=700, seed=11)
    assert hashes(tmp_path / "a") == hashes(tmp_path / "b")


def test_other_seed_gives_other_bytes(tmp_path):
    write_demo_data(tmp_path / "a", rows=700, seed=11)
    write_demo_data(tmp_path / "b", rows=700, seed=12)
    first, second = hashes(tmp_path / "a"), hashes(tmp_path / "b")
    assert first[X_FILE] != second[X_FILE]
    assert first[Y_FILE] != second[Y_FILE]  # same class counts, shuffled differently


def test_independent_of_hash_seed(tmp_path):
    """Two interpreters with different string-hash seeds write the same bytes (and the pinned ones)."""
    code = (
        "import sys, hashlib; from pathlib import Path; from mlops_rakuten.core.demo_data import write_demo_data; "
        "out = Path(sys.argv[1]); write_demo_data(out, 500, 7); "
        "print(*(hashlib.sha256((out / n).read_bytes()).hexdigest() for n in sys.argv[2:]))"
    )
    package_root = str(Path(mlops_rakuten.__file__).resolve().parents[1])
    outputs = []
    for hash_seed in ("0", "4242"):
        env = {
            **os.environ,
            "PYTHONHASHSEED": hash_seed,
            "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
        }
        result = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / hash_seed), X_FILE, Y_FILE],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.append(result.stdout.split())
    assert outputs[0] == outputs[1] == [PINNED[X_FILE], PINNED[Y_FILE]]


def test_challenge_format(demo, frames):
    x, y = frames
    assert (demo / X_FILE).read_text(encoding="utf-8").split("\n", 1)[0] == ",designation,description,productid,imageid"
    assert (demo / Y_FILE).read_text(encoding="utf-8").split("\n", 1)[0] == ",prdtypecode"
    assert b"\r" not in (demo / X_FILE).read_bytes()
    assert list(x.columns) == ["designation", "description", "productid", "imageid"]
    assert list(y.columns) == ["prdtypecode"]
    assert list(x.index) == list(range(2000))
    assert x.index.equals(y.index)
    assert x["designation"].notna().all() and (x["designation"].str.len() >= 5).all()
    for column in ("productid", "imageid"):
        assert x[column].dtype == "int64" and (x[column] > 100_000).all() and x[column].is_unique


def test_every_class_present(frames):
    _, y = frames
    assert sorted(y["prdtypecode"].unique()) == list(CODES)


def test_smallest_dataset_has_two_rows_per_class(tmp_path):
    write_demo_data(tmp_path, rows=MIN_ROWS, seed=0)
    counts = pd.read_csv(tmp_path / Y_FILE, index_col=0)["prdtypecode"].value_counts()
    assert sorted(counts.index) == list(CODES) and (counts == 2).all()


def test_descriptions_html_or_empty(frames):
    x, _ = frames
    assert abs(x["description"].isna().mean() - (1 - (1 - TERSE) * DESCRIBED)) <= 0.05  # terse ones have none
    described = x["description"].dropna()
    assert described.str.contains("&eacute;").mean() > 0.2
    assert described.str.contains("<br />|<p>").mean() > 0.3
    assert 250 < described.str.len().mean() < 1500


def test_class_counts_follow_the_table():
    assert class_counts(84916) == {code: count for code, (_, count) in CLASSES.items()}
    total = sum(count for _, count in CLASSES.values())
    for rows in (MIN_ROWS, 55, 100, 500, 3000, 10_001):
        counts = class_counts(rows)
        assert sum(counts.values()) == rows and min(counts.values()) >= 2
        if rows >= 500:
            for code, (_, real) in CLASSES.items():
                assert abs(counts[code] - rows * real / total) < 1


def test_file_class_frequencies(frames):
    _, y = frames
    assert y["prdtypecode"].value_counts().to_dict() == class_counts(2000)


def test_some_exact_duplicates(frames):
    x, y = frames
    texts = x[["designation", "description"]].fillna("")
    duplicated = texts.duplicated(keep=False)
    assert 0.002 <= texts.duplicated().mean() <= 0.02
    # a re-posted listing keeps its class
    assert texts[duplicated].join(y).groupby(["designation", "description"])["prdtypecode"].nunique().max() == 1


def test_generate_matches_files(demo):
    x_rows, y_rows = generate(2000, 3)
    x = pd.read_csv(demo / X_FILE, index_col=0, dtype=str, keep_default_na=False)
    assert x.reset_index().values.tolist() == x_rows
    assert len(y_rows) == 2000 and y_rows[0][0] == "0"


@pytest.mark.parametrize("rows", [0, MIN_ROWS - 1, -5, 100.0, True, "1000"])
def test_too_few_or_bad_rows(tmp_path, rows):
    with pytest.raises(InputError, match="rows="):
        write_demo_data(tmp_path, rows=rows, seed=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("seed", [-1, 1.5, None, "7", False])
def test_bad_seed(tmp_path, seed):
    with pytest.raises(InputError, match="seed="):
        write_demo_data(tmp_path, rows=1000, seed=seed)
    assert list(tmp_path.iterdir()) == []
