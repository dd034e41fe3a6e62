"""Prediction with the saved model: top-k classes and a score for each product.

The saved Pipeline cleans raw ``designation``/``description`` itself, so this
module never touches text beyond deciding which rows have none.

Score: LinearSVC gives decision values, not probabilities. ``score`` is the
softmax of the decision values divided by ``TEMPERATURE``: positive, summing
to 1 over the 27 classes, and ordered like the decision values (so the top
class is the model's prediction). The temperature was chosen by
cross-validated log-loss on real challenge text, where the mean top-1 score
then matches top-1 accuracy (``rakuten calibration`` re-measures it); it is a
confidence indicator, not a per-class calibrated probability.
"""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mlops_rakuten.core.atomic import atomic_open
from mlops_rakuten.core.categories import category_name
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.features import clean_products, vectorize_cleaned
from mlops_rakuten.text import product_text

# Top decision values of a LinearSVC sit around [-0.6, 1.4]: at temperature 1 the softmax is
# nearly flat over 27 classes. On the real-text sample the out-of-fold log-loss is lowest near
# 0.2, where 5-fold CV gives mean top-1 score 0.694 vs top-1 accuracy 0.698 (ECE 0.074).
# Preferred to CalibratedClassifierCV, which refits the SVC per fold: too slow for the 60 s budget.
TEMPERATURE = 0.2

SCORE_HELP = (
    f"score = softmax(decision values / {TEMPERATURE}) over all classes: sums to 1, best class first; "
    "a confidence indicator (mean top-1 score ~ top-1 accuracy on real text), not a calibrated probability"
)


def load_model(path: Path) -> Pipeline:
    """The saved model pipeline; InputError naming the file if it is missing or not a model."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"{path}: file not found (expected a model from the train stage: `make run` builds it, "
            f"or `dvc pull` brings it from your team's remote)"
        )
    try:
        model = joblib.load(path)
    except Exception as exc:  # unpickling fails in many ways (EOF, bad opcode, missing class...)
        raise InputError(f"{path}: not a saved model ({type(exc).__name__}: {exc})") from None
    if not (isinstance(model, Pipeline) and hasattr(model, "decision_function") and hasattr(model, "classes_")):
        raise InputError(f"{path}: not a saved model (expected a scikit-learn Pipeline, got {type(model).__name__})")
    return model


def has_text(frame: pd.DataFrame) -> np.ndarray:
    """Boolean mask of the rows with some text once cleaned (the others cannot be classified)."""
    description = frame["description"] if "description" in frame else [""] * len(frame)
    return np.array(
        [product_text(d, s) != "" for d, s in zip(frame["designation"], description, strict=True)], dtype=bool
    )


def softmax_scores(decision: np.ndarray, temperature: float = TEMPERATURE) -> np.ndarray:
    """Row-wise softmax of decision values / temperature (shifted by the row max to avoid overflow)."""
    z = decision.astype(np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    exp = np.exp(z)
    return exp / exp.sum(axis=1, keepdims=True)


def decision_values(model: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """n x classes decision values, also for a two-class model (which returns one column).

    Same numbers as ``model.decision_function(frame)``, computed from the fitted
    parts directly: a served single prediction then takes ~1.5 ms instead of ~3.5 ms.
    """
    return decision_values_cleaned(model, clean_texts(model, frame))


def clean_texts(model: Pipeline, frame: pd.DataFrame) -> pd.DataFrame:
    """The model's own cleaning of raw products (``text`` and ``head`` columns)."""
    return clean_products(model.named_steps["features"], frame)


def decision_values_cleaned(model: Pipeline, texts: pd.DataFrame) -> np.ndarray:
    """``decision_values`` of texts ``clean_texts`` returned."""
    classifier = model.named_steps["classifier"]
    features = vectorize_cleaned(model.named_steps["features"], texts)
    decision = np.asarray(features @ classifier.coef_.T + classifier.intercept_)
    return np.column_stack([-decision[:, 0], decision[:, 0]]) if decision.shape[1] == 1 else decision


def predict_top_k(model: Pipeline, frame: pd.DataFrame, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes (n x k, int) and scores (n x k, float) of the k best classes, best first.

    ``frame`` has ``designation`` and optionally ``description``. Rows without
    text still get the model's answer (its prior); callers that care use ``has_text``.
    """
    _check_k(model, k)
    if "designation" not in frame:
        raise InputError("missing column 'designation' (expected designation and optionally description)")
    if len(frame) == 0:
        return np.empty((0, k), dtype=np.int64), np.empty((0, k), dtype=np.float64)
    return _best(model, decision_values(model, frame), k)


def predict_top_k_cleaned(model: Pipeline, texts: pd.DataFrame, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``predict_top_k`` of texts ``clean_texts`` returned (the server cleans each product once)."""
    _check_k(model, k)
    if len(texts) == 0:
        return np.empty((0, k), dtype=np.int64), np.empty((0, k), dtype=np.float64)
    return _best(model, decision_values_cleaned(model, texts), k)


def _check_k(model: Pipeline, k: int) -> None:
    n_classes = len(model.classes_)
    if not 1 <= k <= n_classes:
        raise InputError(f"top-k must be between 1 and {n_classes} (the model's number of classes), got {k}")


def _best(model: Pipeline, decision: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = softmax_scores(decision)
    # A stable sort on the negated scores keeps ties in class order, so output is deterministic.
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    codes = np.asarray(model.classes_)[order].astype(np.int64)
    return codes, np.take_along_axis(scores, order, axis=1)


def as_records(codes_row, scores_row) -> list[dict]:
    """One product's top-k as JSON-ready records: prdtypecode, French category name, score."""
    return [
        {"prdtypecode": int(code), "category": category_name(int(code)), "score": float(score)}
        for code, score in zip(codes_row, scores_row, strict=True)
    ]


# --- CSV files: streamed in chunks so memory is the model plus one chunk ---------------------

TEXT_COLUMNS = ("designation", "description")
DEFAULT_CHUNK_SIZE = 10_000


def _csv_layout(path: Path) -> bool:
    """Check the header; True if its first column is an unnamed index (kept as the output index)."""
    if not path.is_file():
        raise InputError(f"{path}: file not found (expected a CSV with a designation column)")
    try:
        header = pd.read_csv(path, nrows=0, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: empty file (expected a CSV with a designation column)") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except pd.errors.ParserError as exc:
        raise InputError(f"{path}: not a valid CSV ({_first_line(exc)})") from None
    columns = list(header.columns)
    if "designation" not in columns:
        raise InputError(
            f"{path}: missing column 'designation' (found {columns}; expected designation and optionally description)"
        )
    return str(columns[0]).startswith("Unnamed: 0")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def read_chunks(path: Path, chunk_size: int):
    """Yield the text columns of ``path`` ``chunk_size`` rows at a time, index included.

    Every column is read as a string with no NA guessing, so "NA" stays a
    word, empty fields are "" and the index is written back exactly as given.
    """
    indexed = _csv_layout(path)
    # All columns are parsed (no usecols): with usecols pandas silently accepts a row with too
    # many fields, the sign of broken quoting that would shift text into the wrong column.
    reader = pd.read_csv(
        path,
        chunksize=chunk_size,
        encoding="utf-8-sig",
        dtype=str,
        keep_default_na=False,
        index_col=0 if indexed else None,
    )
    try:
        # Decoding and parsing happen lazily, chunk by chunk, so their errors surface here.
        for chunk in reader:
            yield chunk[[c for c in TEXT_COLUMNS if c in chunk.columns]]
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason}); save it as UTF-8") from None
    except pd.errors.ParserError as exc:
        raise InputError(f"{path}: not a valid CSV ({_first_line(exc)})") from None
    finally:
        reader.close()


def predict_frame(model: Pipeline, frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """Output rows for one chunk: prdtypecode, category and, when k > 1, top/category/score 1..K.

    Each code column has the French name of its class beside it (``category``,
    ``category1``...), as the JSON records have. Rows without text get empty cells: the model would only return its prior
    for them, which looks like a prediction but is not one.
    """
    ok = has_text(frame)
    codes, scores = predict_top_k(model, frame[ok], k)
    full_codes = np.zeros((len(frame), k), dtype=np.int64)
    full_codes[ok] = codes
    full_scores = np.full((len(frame), k), np.nan)
    full_scores[ok] = scores

    def code_column(i: int) -> pd.Series:
        # Nullable integers: an unclassified row writes as an empty cell, not "nan" or "10.0".
        return pd.Series(full_codes[:, i], index=frame.index, dtype="Int64").where(ok)

    def name_column(i: int) -> pd.Series:
        return pd.Series(
            [category_name(int(c)) if has else None for c, has in zip(full_codes[:, i], ok, strict=True)],
            index=frame.index,
            dtype=object,
        )

    out = pd.DataFrame({"prdtypecode": code_column(0), "category": name_column(0)}, index=frame.index)
    if k > 1:
        for i in range(k):
            out[f"top{i + 1}"] = code_column(i)
            out[f"category{i + 1}"] = name_column(i)
            out[f"score{i + 1}"] = full_scores[:, i]
    return out


def predict_csv(
    model: Pipeline, source: Path, target: Path, k: int, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> tuple[int, int]:
    """Predict every row of ``source`` into ``target``; (rows, rows without text).

    Chunks go to a temp file renamed over ``target`` only once all succeeded,
    so a failure in any chunk leaves ``target`` absent or as it was.
    """
    rows = empty = 0
    with atomic_open(target) as handle:
        for chunk in read_chunks(source, chunk_size):
            out = predict_frame(model, chunk, k)
            out.to_csv(
                handle, header=rows == 0, index_label=chunk.index.name or "", float_format="%.6f", lineterminator="\n"
            )
            rows += len(chunk)
            empty += int(out["prdtypecode"].isna().sum())
        if rows == 0:
            raise InputError(f"{source}: no rows (expected at least one product under the header)")
    return rows, empty


# --- calibration: does the top-1 score mean what it says? --------------------------------------

CALIBRATION_TEMPERATURES = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """ECE: |accuracy - mean confidence| per equal-width confidence bin, weighted by the bin's share."""
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(which):
        in_bin = which == b
        total += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(total)


def calibration(
    model: Pipeline, frame: pd.DataFrame, labels: np.ndarray, temperatures=CALIBRATION_TEMPERATURES
) -> list[dict]:
    """Top-1 accuracy, mean top-1 score, ECE and log-loss of the score at each temperature."""
    decision = decision_values(model, frame)
    classes = np.asarray(model.classes_)
    correct = classes[decision.argmax(axis=1)] == labels
    # A label the model never saw gets probability 0: clip so log-loss stays finite.
    label_col = np.searchsorted(classes, labels).clip(0, len(classes) - 1)
    rows = []
    for t in temperatures:
        scores = softmax_scores(decision, t)
        top1 = scores.max(axis=1)
        true_score = np.where(classes[label_col] == labels, scores[np.arange(len(labels)), label_col], 0.0)
        rows.append(
            {
                "temperature": t,
                "accuracy": float(correct.mean()),
                "mean_top1_score": float(top1.mean()),
                "ece": expected_calibration_error(top1, correct),
                "log_loss": float(-np.log(np.maximum(true_score, 1e-12)).mean()),
            }
        )
    return rows


def predict_text(model: Pipeline, designation: str, description: str, k: int) -> list[dict]:
    """Top-k records for one product; InputError if it has no text to classify."""
    frame = pd.DataFrame({"designation": [designation], "description": [description]})
    if not has_text(frame)[0]:
        raise InputError("--text: no text left after cleaning (expected a product title)")
    codes, scores = predict_top_k(model, frame, k)
    return as_records(codes[0], scores[0])
