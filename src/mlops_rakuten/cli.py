"""The ``rakuten`` command: one subcommand per task around the pipeline."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlops_rakuten.errors import exit_on_input_error, setup_logging


def _demo_data(args: argparse.Namespace) -> None:
    from mlops_rakuten.demo_data import write_demo_data

    write_demo_data(args.out, args.rows, args.seed)
    print(f"wrote {args.rows} demo products to {args.out}")


def _ensure_raw_data(args: argparse.Namespace) -> None:
    from mlops_rakuten.raw_data import ensure_raw_data

    ensure_raw_data(args.raw_dir, args.dvc_file)


def build_parser() -> argparse.ArgumentParser:
    from mlops_rakuten.raw_data import DEMO_ROWS, DEMO_SEED

    parser = argparse.ArgumentParser(prog="rakuten", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo-data", help="write a synthetic data set in the challenge's CSV format")
    demo.add_argument("--rows", type=int, default=DEMO_ROWS, help=f"number of products (default {DEMO_ROWS})")
    demo.add_argument("--seed", type=int, default=DEMO_SEED, help=f"random seed (default {DEMO_SEED})")
    demo.add_argument("--out", type=Path, default=Path("data/raw"), help="output folder (default data/raw)")
    demo.set_defaults(run=_demo_data)

    raw = commands.add_parser("ensure-raw-data", help="dvc pull data/raw, or regenerate the demo set it tracks")
    raw.add_argument("--raw-dir", type=Path, default=Path("data/raw"))
    raw.add_argument("--dvc-file", type=Path, default=Path("data/raw.dvc"))
    raw.set_defaults(run=_ensure_raw_data)
    return parser


@exit_on_input_error
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    setup_logging()
    args.run(args)


if __name__ == "__main__":
    main()
