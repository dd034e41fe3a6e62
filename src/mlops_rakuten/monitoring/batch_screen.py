"""`rakuten retrain`'s second look at each new batch before a candidate is built from it.

A batch screened at upload may have been screened against an older model, or not at all (no model yet,
or uploaded before the screen existed). So every batch still ``accepted`` whose rows production's data
did not hold is screened again with production's own model, metrics and test predictions (its
commit's); one that fails now is quarantined (the record and `dvc add data/raw`, as `rakuten batches` does) and data/raw.dvc
committed, so the candidate, built from HEAD, never trains on it. Batches a person approved are not
second-guessed. The project lock is not taken again: the retrain, like its other commits, runs as the
project's owner (POST /retrain runs it under the server's lock, passed down).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from mlops_rakuten.core.batches import ACCEPTED, QUARANTINED, Batch, read_batches
from mlops_rakuten.core.dataset import read_products
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.paths import CLASS_METRICS, METRICS, RAW_DIR, RAW_POINTER, X_FILE, Y_FILE
from mlops_rakuten.core.predict import load_model
from mlops_rakuten.monitoring.label_pairs import TEST_PREDICTIONS, Confusion, parse_predictions
from mlops_rakuten.monitoring.label_screen import parse_metrics, screen_batch
from mlops_rakuten.monitoring.reference import MODEL_PATH, Built
from mlops_rakuten.ops.commands import run
from mlops_rakuten.ops.ingest import record_decision
from mlops_rakuten.stages.ingest import X_COLUMNS, Y_COLUMNS, join_challenge, read_challenge_csv

log = logging.getLogger("retrain")
PRODUCTS = "data/interim/products.csv"


def new_batches(batches: list[Batch], seen: pd.Index) -> list[Batch]:
    """The accepted batches none of whose rows production's data held."""
    return [b for b in batches if b.status == ACCEPTED and not seen.isin(range(b.first_index, b.last_index + 1)).any()]


def _git_text(project: Path, commit: str, path: str) -> str:
    shown = run(["git", "show", f"{commit}:{path}"], project, check=False)
    if shown.returncode != 0:
        raise InputError(f"production's commit {commit[:7]} has no {path}: its expected accuracy is unknown")
    return shown.stdout


def _test_confusion(project: Path, commit: str) -> Confusion | None:
    """Production's confusion on its test split at its commit (None: a commit without test predictions)."""
    shown = run(["git", "show", f"{commit}:{TEST_PREDICTIONS}"], project, check=False)
    if shown.returncode != 0:
        log.warning("production's commit %s has no %s: the screen's pair test is skipped", commit[:7], TEST_PREDICTIONS)
        return None
    return parse_predictions(shown.stdout, f"{TEST_PREDICTIONS} at {commit[:7]}")


def rescreen_new_batches(project: Path, production: Built, commit: str) -> list[Batch]:
    """Screen the new accepted batches with production; quarantine (and commit) those that fail now."""
    batches = [b for b in read_batches(project / RAW_DIR) if b.status == ACCEPTED]
    if batches:  # production's data is read only when there is something to screen
        batches = new_batches(batches, read_products(production.file(project, PRODUCTS)).index)
    if not batches:
        return []
    model = load_model(production.file(project, MODEL_PATH))
    expected, recalls = parse_metrics(_git_text(project, commit, METRICS), _git_text(project, commit, CLASS_METRICS))
    confusion = _test_confusion(project, commit)
    raw = project / RAW_DIR
    x_path, y_path = raw / X_FILE, raw / Y_FILE
    products = join_challenge(
        read_challenge_csv(x_path, X_COLUMNS), read_challenge_csv(y_path, Y_COLUMNS), x_path, y_path
    )
    quarantined = []
    for batch in batches:
        rows = products.loc[batch.first_index : batch.last_index]
        result = screen_batch(model, rows, expected, recalls, confusion)
        if result["passed"]:
            continue
        quarantined.append(record_decision(project, batch.id, QUARANTINED, result))
        log.warning("batch %d from %s quarantined before the candidate: %s", batch.id, batch.source, result["reason"])
    if quarantined:
        run(["git", "add", RAW_POINTER], project)
        ids = ", ".join(str(b.id) for b in quarantined)
        run(
            ["git", "commit", "-q", "-m", f"Quarantine batch(es) {ids}: the label screen failed before retraining"],
            project,
        )
    return quarantined
