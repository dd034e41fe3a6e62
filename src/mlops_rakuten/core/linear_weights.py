"""The saved model's linear classifier as plain arrays, read without scikit-learn.

`evaluate` scores the test split's features, already computed by `featurize`: of the
model it needs only the classifier's classes, coefficients and intercepts. Unpickling the
model builds every scikit-learn object in it, and so imports scikit-learn (about 1.2 s of
an experiment). This reader unpickles scikit-learn's (and this package's) classes as
plain records of their pickled fields instead; numpy arrays are numpy arrays. It reads only
the model files this project writes (core/atomic.py's ``dump_pickle``), as ``load_pickle`` does.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_rakuten.core.errors import InputError

if TYPE_CHECKING:
    from scipy import sparse

# Modules whose classes and functions become records: the model's own, never imported here.
RECORDED = ("sklearn", "mlops_rakuten")


class _Record:
    """What a pickled object of a recorded class held: its fields, as attributes."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Record:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.__dict__.update(state)


class _RecordingUnpickler(pickle.Unpickler):
    def __init__(self, handle: Any) -> None:
        super().__init__(handle)
        self._classes: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] not in RECORDED:
            return super().find_class(module, name)
        key = (module, name)
        if key not in self._classes:
            self._classes[key] = type(name, (_Record,), {"__module__": module})
        return self._classes[key]


@dataclass(frozen=True)
class LinearWeights:
    """A one-vs-rest linear classifier: class ``classes[i]`` scores ``x · coef[i] + intercept[i]``."""

    classes: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    def predict(self, x: sparse.csr_matrix) -> np.ndarray:
        """The best-scoring class of each row: LinearSVC.predict's arithmetic, so the same classes, ties included."""
        scores = x @ self.coef.T + self.intercept
        if self.coef.shape[0] == 1:  # two classes: one decision value, the second class where it is positive
            return self.classes[(scores[:, 0] > 0).astype(np.intp)]
        return self.classes[scores.argmax(axis=1)]


def read_linear_weights(path: Path) -> LinearWeights:
    """The classifier step of the Pipeline saved in ``path``; InputError if it holds none."""
    with open(path, "rb") as handle:
        try:
            model = _RecordingUnpickler(handle).load()
        except (pickle.UnpicklingError, EOFError, ValueError) as error:
            raise InputError(f"{path}: not a model file this project wrote ({error})") from error
    steps: Any = getattr(model, "steps", None)
    named = isinstance(steps, list) and all(isinstance(step, tuple) and len(step) == 2 for step in steps)
    classifier: Any = dict(steps).get("classifier") if named else None
    fields: list[Any] = [getattr(classifier, field, None) for field in ("classes_", "coef_", "intercept_")]
    if not all(isinstance(field, np.ndarray) for field in fields):
        raise InputError(
            f"{path}: expected a fitted Pipeline whose 'classifier' step has classes_, coef_ and intercept_"
        )
    weights = LinearWeights(*fields)
    rows = 1 if len(weights.classes) == 2 else len(weights.classes)
    if weights.coef.ndim != 2 or weights.coef.shape[0] != rows or len(weights.intercept) != rows:
        raise InputError(f"{path}: the classifier's coef_ is {weights.coef.shape} for {len(weights.classes)} classes")
    return weights
