"""Stage evaluate: score the hold-out model (fitted on the train split only) on the test split.

Writes the headline metrics, per-class metrics (keyed by code), a row-normalised
confusion matrix image with "2583 Piscine et spa" labels, and for ``dvc plots`` a CSV
of the test rows: ``actual,predicted`` codes and the same two as labels.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mlops_rakuten.core.atomic import atomic_open, atomic_path
from mlops_rakuten.core.categories import CODES, category_label
from mlops_rakuten.core.errors import InputError, exit_on_input_error, exit_skipping_teardown, setup_logging
from mlops_rakuten.core.linear_weights import read_linear_weights
from mlops_rakuten.core.scores import class_metrics, confusion_counts, headline_metrics

# No scikit-learn: the classifier's arrays and the scores are read and computed with numpy
# (core/linear_weights.py, core/scores.py). matplotlib (the plot) is imported in a forked
# process while this one imports the feature files' readers (scipy, joblib: 0.2 s), reads the
# model and predicts: main() forks it first.
if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

log = logging.getLogger("evaluate")


def confusion_figure(actual: np.ndarray, predicted: np.ndarray) -> Figure:
    """Row-normalised confusion matrix, axes labelled "code name" in code order."""
    # The Agg canvas without pyplot: no display, PNG bytes independent of the machine, and 0.3 s less to import.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = [c for c in CODES if c in set(actual) | set(predicted)]
    counts = confusion_counts(actual, predicted, labels)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    names = [category_label(c) for c in labels]
    # Names on the rows only, codes on the columns: the cells get the room, and stay readable on a
    # page (about 45 px each at 1400 px wide).
    fig = Figure(figsize=(14, 11.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), [str(c) for c in labels], rotation=90, fontsize=10)
    ax.set_yticks(range(len(labels)), names, fontsize=10)
    ax.set_xlabel("predicted class (code)")
    ax.set_ylabel("actual class")
    ax.set_title("Confusion matrix on the test split (each row sums to 1)")
    for i, j in zip(*np.nonzero(share >= 0.005), strict=True):
        ax.text(
            j,
            i,
            f"{share[i, j]:.2f}"[1:] if share[i, j] < 1 else "1",
            ha="center",
            va="center",
            fontsize=9,
            color="white" if share[i, j] > 0.5 else "black",
        )
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the actual class")
    fig.tight_layout()
    return fig


def _import_matplotlib() -> None:
    import matplotlib.backends.backend_agg
    import matplotlib.figure  # noqa: F401


def plot_confusion(actual: np.ndarray, predicted: np.ndarray, path: Path) -> None:
    fig = confusion_figure(actual, predicted)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None}, bbox_inches="tight")  # no name cut off


def prediction_table(actual: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    """One row per test product: the codes, then the labels ``dvc plots`` shows on its axes."""
    import pandas as pd

    return pd.DataFrame(
        {
            "actual": actual,
            "predicted": predicted,
            "actual_class": [category_label(int(c)) for c in actual],
            "predicted_class": [category_label(int(c)) for c in predicted],
        }
    )


def write_json(data: dict, path: Path) -> None:
    with atomic_open(path) as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")


@exit_on_input_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--train-features", required=True, type=Path, help="only its row count is used")
    parser.add_argument("--test-features", required=True, type=Path)
    parser.add_argument("--metrics", required=True, type=Path, help="headline metrics (JSON)")
    parser.add_argument("--class-metrics", required=True, type=Path, help="per-class metrics (JSON)")
    parser.add_argument("--confusion-plot", required=True, type=Path, help="confusion matrix (PNG)")
    parser.add_argument(
        "--predictions", required=True, type=Path, help="actual,predicted,actual_class,predicted_class (CSV)"
    )
    args = parser.parse_args(argv)
    setup_logging()
    if not args.model.is_file():
        raise InputError(f"{args.model}: file not found (expected the hold-out model from the train stage)")
    # A forked process imports matplotlib while this one reads the model and predicts, then draws.
    with multiprocessing.get_context("fork").Pool(1) as painter:
        painter.apply_async(_import_matplotlib)
        from mlops_rakuten.core.feature_files import load_features

        classifier = read_linear_weights(args.model)
        x_test, actual = load_features(args.test_features)
        n_train = load_features(args.train_features, mmap_mode="r")[0].shape[0]
        if x_test.shape[1] != classifier.coef.shape[1]:
            raise InputError(
                f"{args.test_features}: {x_test.shape[1]} features, but {args.model} expects "
                f"{classifier.coef.shape[1]} (features and model of different runs?)"
            )
        predicted = classifier.predict(x_test)
        drawn = painter.apply_async(plot_confusion, (actual, predicted, args.confusion_plot))
        metrics = headline_metrics(actual, predicted, n_train)
        write_json(metrics, args.metrics)
        write_json(class_metrics(actual, predicted), args.class_metrics)
        with atomic_path(args.predictions) as tmp:
            prediction_table(actual, predicted).to_csv(tmp, index=False, lineterminator="\n")
        drawn.get()
    log.info(
        "test rows %d: accuracy %.4f, weighted F1 %.4f, macro F1 %.4f",
        metrics["n_test"],
        metrics["accuracy"],
        metrics["f1_weighted"],
        metrics["f1_macro"],
    )


if __name__ == "__main__":
    main()
    exit_skipping_teardown()
