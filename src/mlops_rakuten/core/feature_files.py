"""The feature files between featurize and train/evaluate: matrix, labels, held-out flags.

Apart from the extractor (core/features.py) so that reading them imports no
scikit-learn: the train stage overlaps that 1 s import with its fit.
"""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
from scipy import sparse

from mlops_rakuten.core.atomic import dump_joblib
from mlops_rakuten.core.errors import InputError


def write_features(x: sparse.spmatrix, y: np.ndarray, path: Path, held_out: np.ndarray | None = None) -> None:
    """One split's matrix and labels; ``held_out`` flags held-out batch rows (None: no batches, no key)."""
    data = {"X": x, "y": y}
    if held_out is not None:
        data["held_out"] = held_out
    dump_joblib(data, path)


def load_features(path: Path, mmap_mode: str | None = None) -> tuple[sparse.spmatrix, np.ndarray]:
    """Matrix and labels written by the featurize stage (``mmap_mode="r"`` to only peek)."""
    if not path.is_file():
        raise InputError(f"{path}: file not found (expected features from the featurize stage)")
    data = joblib.load(path, mmap_mode=mmap_mode)
    return data["X"], data["y"]


def load_held_out(path: Path) -> np.ndarray | None:
    """Which rows of a test-feature file are held-out batch rows (featurize's ``held_out``); None without batches."""
    data = joblib.load(path, mmap_mode="r")
    return np.asarray(data["held_out"], dtype=bool) if "held_out" in data else None
