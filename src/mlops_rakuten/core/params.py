"""Read and check one section of params.yaml: the only way stages get params."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Callable

import yaml

from mlops_rakuten.core.errors import InputError


def flatten_params(tree: Any) -> dict[str, Any]:
    """Nested params (or metrics) as dotted keys in the file's own order: ``{"model.C": 0.5, ...}``.

    The names ``dvc exp run -S``, ``dvc params diff`` and ``dvc exp show`` use. A tree that is
    not a mapping has no keys.
    """
    flat: dict[str, Any] = {}
    for key, value in tree.items() if isinstance(tree, dict) else ():
        if isinstance(value, dict):
            flat.update({f"{key}.{name}": leaf for name, leaf in flatten_params(value).items()})
        else:
            flat[str(key)] = value
    return flat


# key -> (accepts value?, what is expected). Every key must be present.
Check = tuple[Callable[[Any], bool], str]


def as_yaml(value: Any) -> str:
    """A value as params.yaml writes it (null, true, balanced; '1' for the text 1), for messages."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**6)
    return text.removesuffix("\n...\n").strip()


def _choices(items: list[Any]) -> str:
    shown = [as_yaml(item) for item in items]
    return ", ".join(shown[:-1]) + f" or {shown[-1]}" if len(shown) > 1 else "".join(shown)


def _number(low: float, high: float, low_open: bool = True) -> Check:
    def ok(v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)):  # YAML numbers; a bool is not one
            return False
        return (low < v if low_open else low <= v) and v <= high

    bracket = "(" if low_open else "["
    return ok, f"a number in {bracket}{low}, {high}]"


def _integer(low: int, high: int | None = None) -> Check:
    def ok(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= low and (high is None or v <= high)

    return ok, f"an integer >= {low}" + (f" and <= {high}" if high is not None else "")


def _optional_integer(low: int) -> Check:
    ok, what = _integer(low)
    return (lambda v: v is None or ok(v)), f"null or {what}"


def _one_of(*choices: Any) -> Check:
    return (lambda v: v in choices and type(v) in {type(c) for c in choices}), f"one of {_choices(list(choices))}"


_BOOL: Check = (lambda v: isinstance(v, bool), "true or false")
_SEED = _integer(0, 2**32 - 1)

SCHEMA: dict[str, dict[str, Check]] = {
    "ingest": {"fraction": _number(0, 1), "seed": _SEED},
    "preprocess": {"min_text_chars": _integer(1), "drop_duplicates": _BOOL},
    "split": {"test_size": _number(0, 0.9), "seed": _SEED},
    "featurize": {
        "word_ngram_max": _integer(1, 3),
        "word_min_df": _integer(1),
        "word_max_features": _optional_integer(1),
        "sublinear_tf": _BOOL,
        "strip_accents": _one_of(None, "unicode", "ascii"),
        "char_ngram_min": _integer(1, 8),
        "char_ngram_max": _integer(1, 8),
        "char_min_df": _integer(1),
        "char_max_features": _optional_integer(0),
        "char_max_chars": _integer(1),
        "n_jobs": _integer(1, 64),
    },
    "model": {
        "C": _number(0, 1e6),
        "class_weight": _one_of(None, "balanced"),
        "solver": _one_of("block", "newton", "liblinear"),
        "tol": _number(0, 1),
        "max_iter": _integer(1),
        "seed": _SEED,
        "refit_on_all": _BOOL,
        "refit_max_rows": _integer(0),
        "n_jobs": _integer(1, 64),
    },
}


def _unknown(path: Path, name: str, known: list[str], prefix: str = "") -> InputError:
    """A misspelt key or section: name it, suggest the closest known one, list them all."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    guess = f"did you mean {prefix}{close[0]}? " if close else ""
    kind = "key" if prefix else "section"
    return InputError(f"{path}: unknown {kind} {prefix}{name} ({guess}expected one of {_choices(known)})")


def _read_document(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: file not found (expected the pipeline's params file)") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    return document if isinstance(document, dict) else {}


def read_params(path: str | Path, section: str, document: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return ``section`` of the params file, every key checked against SCHEMA."""
    path = Path(path)
    values = (_read_document(path) if document is None else document).get(section)
    if not isinstance(values, dict):
        raise InputError(f"{path}: missing section '{section}' (expected a mapping of its keys)")
    schema = SCHEMA[section]
    unknown = sorted(set(values) - set(schema))
    if unknown:
        raise _unknown(path, str(unknown[0]), sorted(schema), prefix=f"{section}.")
    for key, (ok, expected) in schema.items():
        if key not in values:
            raise InputError(f"{path}: missing key {section}.{key} (expected {expected})")
        if not ok(values[key]):
            raise InputError(f"{path}: {section}.{key} = {as_yaml(values[key])}, expected {expected}")
    return values


def read_all_params(path: str | Path) -> dict[str, dict[str, Any]]:
    """Every section of the params file, checked; an unknown section is an error too."""
    path = Path(path)
    document = _read_document(path)
    unknown = sorted(set(map(str, document)) - set(SCHEMA))
    if unknown:
        raise _unknown(path, unknown[0], list(SCHEMA))
    return {section: read_params(path, section, document) for section in SCHEMA}
