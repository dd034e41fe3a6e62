"""The ``rakuten`` command: one subcommand per task around the pipeline."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from mlops_rakuten.core import paths
from mlops_rakuten.core.errors import InputError, exit_on_input_error, setup_logging

log = logging.getLogger("predict")


def _demo_data(args: argparse.Namespace) -> None:
    from mlops_rakuten.core.demo_data import write_demo_data

    write_demo_data(args.out, args.rows, args.seed)
    print(f"wrote {args.rows} demo products to {args.out}")


def _predict(args: argparse.Namespace) -> None:
    """--text prints JSON records, --input streams a CSV into --output."""
    if args.chunk_size < 1:
        raise InputError(f"--chunk-size must be at least 1, got {args.chunk_size}")
    if args.input is not None and args.output is None:
        raise InputError("--output is required with --input")
    if args.input is None and args.output is not None:
        raise InputError("--output only applies with --input")
    if args.input is not None and args.description:
        raise InputError("--description only applies with --text (for --input it is a column of the CSV)")
    from mlops_rakuten.core.predict import load_model, predict_csv, predict_text

    model_file = args.model
    if not model_file.is_file() and any(mark in str(model_file) for mark in "#@"):
        from mlops_rakuten.ops.registry import fetch_model

        # A registry reference (rakuten-classifier#prod): fetched into DVC's git-ignored tmp folder.
        model_file = Path(fetch_model(str(model_file), Path.cwd(), Path(".dvc/tmp/registry")).path)
    model = load_model(model_file)
    if args.text is not None:
        print(json.dumps(predict_text(model, args.text, args.description, args.top_k), ensure_ascii=False, indent=2))
        return
    start = time.perf_counter()
    rows, empty = predict_csv(model, args.input, args.output, args.top_k, args.chunk_size)
    log.info(
        "predicted %d rows (%d without text, left empty) from %s to %s in %.1fs",
        rows,
        empty,
        args.input,
        args.output,
        time.perf_counter() - start,
    )


def _calibration(args: argparse.Namespace) -> None:
    """The score's calibration at each temperature, on a labelled product table (e.g. the test split)."""
    from mlops_rakuten.core.dataset import read_products
    from mlops_rakuten.core.predict import TEMPERATURE, calibration, load_model

    model = load_model(args.model)
    products = read_products(args.input)
    print(f"{len(products)} products from {args.input}; the default temperature is {TEMPERATURE}")
    print("temperature  top1_accuracy  mean_top1_score    ECE  log_loss")
    for row in calibration(model, products, products["prdtypecode"].to_numpy()):
        print(
            f"{row['temperature']:>11}  {row['accuracy']:>13.3f}  {row['mean_top1_score']:>15.3f}  "
            f"{row['ece']:>5.3f}  {row['log_loss']:>8.3f}"
        )


def _add_core_commands(commands) -> None:
    """The core's subcommands, here since core keeps only pure functions: demo data, predict, calibration."""
    from mlops_rakuten.core.categories import DEFAULT_TOP_K
    from mlops_rakuten.ops.raw_data import DEMO_ROWS, DEMO_SEED

    demo = commands.add_parser("demo-data", help="write a synthetic data set in the challenge's CSV format")
    demo.add_argument("--rows", type=int, default=DEMO_ROWS, help=f"number of products (default {DEMO_ROWS})")
    demo.add_argument("--seed", type=int, default=DEMO_SEED, help=f"random seed (default {DEMO_SEED})")
    demo.add_argument("--out", type=Path, default=Path(paths.RAW_DIR), help=f"output folder (default {paths.RAW_DIR})")
    demo.set_defaults(run=_demo_data)

    # Help text is literal (not imported from predict.py) so building the parser stays free of
    # pandas/scikit-learn imports; tests/test_predict.py checks it matches predict.TEMPERATURE.
    pred = commands.add_parser(
        "predict",
        help="top-k product types for one text (JSON) or a CSV file (streamed)",
        description="Predict prdtypecode with the saved model. score = softmax(decision values / 0.2) "
        "over all classes: positive, sums to 1, best class first. It is a confidence "
        "indicator (on real text the mean top-1 score matches top-1 accuracy), not a "
        "calibrated probability. Rows with no text (after HTML cleanup) get empty cells "
        "in --output.",
    )
    source = pred.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="one product title (designation); prints JSON records")
    source.add_argument("--input", type=Path, help="CSV with designation and optionally description")
    pred.add_argument("--description", default="", help="description for --text (optional)")
    pred.add_argument(
        "--output",
        type=Path,
        help="CSV to write for --input (index, prdtypecode, category, then top, category and score 1..K)",
    )
    pred.add_argument(
        "--top-k",
        type=int,
        default=DEFAULT_TOP_K,
        help=f"number of classes per product (default {DEFAULT_TOP_K}, as the API's top_k)",
    )
    pred.add_argument(
        "--chunk-size",
        type=int,
        default=10_000,
        help="rows read at a time from --input (default 10000); memory is the model plus one chunk",
    )
    pred.add_argument(
        "--model",
        type=Path,
        default=Path(paths.MODEL),
        help=f"saved model (default {paths.MODEL}), or a registry reference such as "
        "rakuten-classifier#prod or rakuten-classifier@v1.2.0",
    )
    pred.set_defaults(run=_predict)

    calib = commands.add_parser("calibration", help="how well predict's score matches accuracy on a labelled table")
    calib.add_argument(
        "--input",
        type=Path,
        default=Path("data/split/test.csv"),
        help="product table with prdtypecode (default data/split/test.csv)",
    )
    calib.add_argument(
        "--model",
        type=Path,
        default=Path(paths.HOLDOUT_MODEL),
        help=f"saved model that never saw --input (default {paths.HOLDOUT_MODEL}, fitted on the train split only)",
    )
    calib.set_defaults(run=_calibration)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: each package adds its own subcommands (its ``cli`` module)."""
    from mlops_rakuten.monitoring import cli as monitoring
    from mlops_rakuten.ops import cli as ops
    from mlops_rakuten.serve import cli as serve

    parser = argparse.ArgumentParser(prog="rakuten", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_core_commands(commands)
    for package in (ops, serve, monitoring):
        package.add_commands(commands)
    commands.choices["ingest"].set_defaults(screen=_screen_with_shipped_model)
    return parser


def _screen_with_shipped_model(products, project: Path) -> dict:
    """`rakuten ingest`'s label screen (ops cannot import monitoring): the shipped model's predictions."""
    from mlops_rakuten.monitoring.label_screen import model_file, project_screen

    return project_screen(model_file(project / paths.MODEL))(products, project)


@exit_on_input_error
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    setup_logging()
    args.run(args)


if __name__ == "__main__":
    main()
