"""The ``rakuten`` command: one subcommand per task around the pipeline."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlops_rakuten.core import paths
from mlops_rakuten.core.errors import exit_on_input_error, setup_logging
from mlops_rakuten.ops.plot_images import PLOT_IMAGES


def _demo_data(args: argparse.Namespace) -> None:
    from mlops_rakuten.core.demo_data import write_demo_data

    write_demo_data(args.out, args.rows, args.seed)
    print(f"wrote {args.rows} demo products to {args.out}")


def _ensure_raw_data(args: argparse.Namespace) -> None:
    from mlops_rakuten.ops.raw_data import ensure_raw_data

    ensure_raw_data(args.raw_dir, args.dvc_file)


def _dagshub_remote(args: argparse.Namespace) -> None:
    from mlops_rakuten.ops.remote import REMOTE, configure_dagshub

    endpoint = configure_dagshub(args.owner, args.repo)
    print(f"DVC remote '{REMOTE}' (default) -> s3://dvc at {endpoint}; token in .dvc/config.local (git-ignored)")


def _data_status(args: argparse.Namespace) -> None:
    import sys

    from mlops_rakuten.ops.remote import data_status

    sys.exit(data_status())


def _predict(args: argparse.Namespace) -> None:
    from mlops_rakuten.core.predict import predict_command

    if not args.model.is_file() and any(mark in str(args.model) for mark in "#@"):
        from mlops_rakuten.ops.registry import fetch_model

        # A registry reference (rakuten-classifier#prod): fetched into DVC's git-ignored tmp folder.
        args.model = Path(fetch_model(str(args.model), Path.cwd(), Path(".dvc/tmp/registry")).path)
    predict_command(args)


def _register(args: argparse.Namespace) -> None:
    from mlops_rakuten.ops.registry import register

    print(register(args.version, Path.cwd(), args.name).strip())


def _calibration(args: argparse.Namespace) -> None:
    from mlops_rakuten.core.predict import calibration_command

    calibration_command(args)


def _wait_queue(args: argparse.Namespace) -> None:
    from mlops_rakuten.core.errors import InputError
    from mlops_rakuten.ops.experiments import stop_lingering_workers, wait_for_queue_outcome

    outcome = wait_for_queue_outcome(poll=args.poll, timeout=args.timeout)
    stop_lingering_workers()
    failed = sorted(name for name, status in outcome.items() if status != "Success")
    problems = [f"experiment(s) failed: {', '.join(failed)} (see `dvc queue logs NAME`)"] if failed else []
    if args.push:
        from mlops_rakuten.ops.sweep import push_experiments

        finished = sorted(name for name, status in outcome.items() if status == "Success")
        unpushed = push_experiments(finished, args.push)
        if unpushed:
            problems.append(
                f"{len(unpushed)} of {len(finished)} finished experiment(s) not pushed, kept locally; "
                f"run: dvc exp push {args.push} {' '.join(f.name for f in unpushed)}"
            )
        else:
            print(f"pushed {len(finished)} experiment(s) to {args.push}: {' '.join(finished)}")
    if problems:
        raise InputError("; ".join(problems))
    print("experiment queue done")


def _sweep_plan(args: argparse.Namespace) -> None:
    import json

    from mlops_rakuten.ops.sweep import sweep_plan

    points = sweep_plan(args.settings, args.params, args.prefix)
    print(json.dumps([point.as_matrix_entry() for point in points]))


def _push_experiments(args: argparse.Namespace) -> None:
    from mlops_rakuten.core.errors import InputError
    from mlops_rakuten.ops.sweep import push_experiments

    failures = push_experiments(args.names, args.remote, timeout=args.timeout)
    if failures:
        raise InputError(
            f"not pushed, kept locally: {' '.join(f.name for f in failures)}; "
            f"run: dvc exp push {args.remote} {' '.join(f.name for f in failures)}"
        )
    print(f"pushed {' '.join(args.names)} to {args.remote}")


def _learning_curve(args: argparse.Namespace) -> None:
    from mlops_rakuten.ops.experiments import learning_curve

    for run in learning_curve(args.out):
        print(
            f"{run.name}: ingest.fraction={run.params.get('ingest.fraction')} "
            f"n_train={run.metrics['n_train']} f1_weighted={run.metrics['f1_weighted']}"
        )
    print(f"wrote {args.out}")


def _plots(args: argparse.Namespace) -> None:
    from mlops_rakuten.ops.plot_images import plot_images

    for path in plot_images(args.rev, args.out):
        print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")


def _pr_report(args: argparse.Namespace) -> None:
    from mlops_rakuten.ops.pr_report import pr_report

    print(pr_report(args.base, args.image_url, args.note), end="")


def _serve(args: argparse.Namespace) -> None:
    from mlops_rakuten.serve.server import serve

    serve(args.host, args.port, args.workers, args.access_log, args.model, args.follow, args.role)


def _user_add(args: argparse.Namespace) -> None:
    from mlops_rakuten.serve.server import user_add

    print(user_add(args.name, args.role, args.password_stdin, active=not args.inactive))


def _user_list(args: argparse.Namespace) -> None:
    from mlops_rakuten.serve.server import user_list

    print(user_list())


def _user_remove(args: argparse.Namespace) -> None:
    from mlops_rakuten.serve.server import user_remove

    print(user_remove(args.name))


def _user_deactivate(args: argparse.Namespace) -> None:
    from mlops_rakuten.serve.server import user_deactivate

    print(user_deactivate(args.name))


def build_parser() -> argparse.ArgumentParser:
    from mlops_rakuten.core.categories import DEFAULT_TOP_K
    from mlops_rakuten.ops.raw_data import DEMO_ROWS, DEMO_SEED

    parser = argparse.ArgumentParser(prog="rakuten", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo-data", help="write a synthetic data set in the challenge's CSV format")
    demo.add_argument("--rows", type=int, default=DEMO_ROWS, help=f"number of products (default {DEMO_ROWS})")
    demo.add_argument("--seed", type=int, default=DEMO_SEED, help=f"random seed (default {DEMO_SEED})")
    demo.add_argument("--out", type=Path, default=Path(paths.RAW_DIR), help=f"output folder (default {paths.RAW_DIR})")
    demo.set_defaults(run=_demo_data)

    raw = commands.add_parser("ensure-raw-data", help="dvc pull data/raw, or regenerate the demo set it tracks")
    raw.add_argument("--raw-dir", type=Path, default=Path(paths.RAW_DIR))
    raw.add_argument("--dvc-file", type=Path, default=Path(paths.RAW_POINTER))
    raw.set_defaults(run=_ensure_raw_data)

    dags = commands.add_parser(
        "dagshub-remote",
        help="make a DagsHub repo's storage the default DVC remote (token from DAGSHUB_TOKEN or a hidden prompt)",
    )
    dags.add_argument("--owner", required=True, help="DagsHub user or organisation")
    dags.add_argument("--repo", required=True, help="DagsHub repository name")
    dags.set_defaults(run=_dagshub_remote)

    status = commands.add_parser(
        "data-status",
        help="workspace vs local cache, then cache vs the default remote "
        "(says so when none is configured or it cannot be reached)",
    )
    status.set_defaults(run=_data_status)

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

    wait = commands.add_parser("wait-queue", help="wait until dvc's experiment queue is done; fail if one failed")
    wait.add_argument("--poll", type=float, default=5.0, help="seconds between checks (default 5)")
    wait.add_argument("--timeout", type=float, default=6 * 3600, help="give up after this many seconds")
    wait.add_argument(
        "--push",
        metavar="GIT_REMOTE",
        help="then `dvc exp push` every finished run to this git remote (and the DVC remote)",
    )
    wait.set_defaults(run=_wait_queue)

    plan = commands.add_parser(
        "sweep-plan",
        help="a grid of params as JSON, one point per CI runner",
        description="Expand settings like model.C=0.1,0.3,1 into every combination; "
        "print a JSON list of {name, params} (params: space-separated "
        "key=value for `dvc exp run -S`).",
    )
    plan.add_argument("settings", nargs="+", metavar="KEY=V1,V2", help="a params.yaml key and its values")
    plan.add_argument("--prefix", default="", help="put before every experiment name (e.g. sweep-12-)")
    plan.add_argument("--params", type=Path, default=Path(paths.PARAMS), help="params file the keys must exist in")
    plan.set_defaults(run=_sweep_plan)

    push = commands.add_parser("push-experiments", help="dvc exp push each experiment; report the ones that fail")
    push.add_argument("names", nargs="+", metavar="NAME", help="experiment names (as in `dvc exp show`)")
    push.add_argument("--remote", default="origin", help="git remote (default origin)")
    push.add_argument("--timeout", type=float, default=900.0, help="seconds one push may take (default 900)")
    push.set_defaults(run=_push_experiments)

    curve = commands.add_parser("learning-curve", help="plot F1 vs training rows from the ingest.fraction experiments")
    curve.add_argument("--out", type=Path, default=Path(paths.LEARNING_CURVE))
    curve.set_defaults(run=_learning_curve)

    plots = commands.add_parser("plots", help="draw the DVC plots to PNG files, offline (no CDN)")
    plots.add_argument(
        "--rev",
        action="append",
        metavar="REV",
        help="compare with this git revision, as `dvc plots diff REV` (repeatable); default: "
        "the workspace alone, as `dvc plots show`",
    )
    plots.add_argument(
        "--out", type=Path, default=Path(PLOT_IMAGES), help=f"folder for the PNGs (default {PLOT_IMAGES})"
    )
    plots.set_defaults(run=_plots)

    report = commands.add_parser("pr-report", help="Markdown: params, metrics and plots of the workspace vs a base")
    report.add_argument("--base", default="main", help="git revision to compare with (default main)")
    report.add_argument("--image-url", help="URL template with {rev} and {path} to show plots as images")
    report.add_argument("--note", help="a line to add under the title (e.g. where the data came from)")
    report.set_defaults(run=_pr_report)

    serve = commands.add_parser("serve", help="the prediction API (needs RAKUTEN_JWT_SECRET; see docs/serving.md)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    serve.add_argument("--access-log", action="store_true", help="log every request (nginx usually does)")
    serve.add_argument(
        "--model",
        metavar="REFERENCE",
        help="serve a registry version instead of the workspace model: NAME#STAGE, NAME@vX.Y.Z or "
        "NAME@latest, e.g. rakuten-classifier#prod (default: $RAKUTEN_MODEL if set)",
    )
    serve.add_argument(
        "--follow",
        type=float,
        nargs="?",
        const=30.0,
        metavar="SECONDS",
        help="with --model NAME#STAGE: check the registry every SECONDS (default 30) and serve the "
        "version the stage moves to, without a restart (default: $RAKUTEN_FOLLOW_SECONDS, else 0)",
    )
    serve.add_argument(
        "--role",
        choices=("all", "predict", "writer"),
        help="predict: /token /predict /info (replicable); writer: /ingest /train (one per project); "
        "all: both (default: $RAKUTEN_ROLE, else all)",
    )
    serve.set_defaults(run=_serve)

    reg = commands.add_parser(
        "register",
        help="tag HEAD's model as a registry version (GTO) and push the tag",
        description="Refuses when the workspace is not committed, does not match dvc.lock, "
        "or the model or commit are not on the remotes.",
    )
    reg.add_argument("version", help="vMAJOR.MINOR.PATCH, e.g. v1.2.0")
    reg.add_argument(
        "--name", default="rakuten-classifier", help="artifact name in dvc.yaml (default rakuten-classifier)"
    )
    reg.set_defaults(run=_register)

    user = commands.add_parser("user", help="manage the API's users file (RAKUTEN_USERS_FILE)")
    user_commands = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = user_commands.add_parser("add", help="add a user, or replace its password and role")
    add.add_argument("name")
    add.add_argument("--role", choices=["user", "admin"], default="user")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin, not a prompt")
    add.add_argument("--inactive", action="store_true", help="store the user as inactive (login refused)")
    add.set_defaults(run=_user_add)
    listing = user_commands.add_parser("list", help="the users: name, role, active, token version (no hashes)")
    listing.set_defaults(run=_user_list)
    remove = user_commands.add_parser("remove", help="delete a user; its tokens stop working")
    remove.add_argument("name")
    remove.set_defaults(run=_user_remove)
    deactivate = user_commands.add_parser("deactivate", help="refuse a user's logins and revoke its tokens")
    deactivate.add_argument("name")
    deactivate.set_defaults(run=_user_deactivate)
    from mlops_rakuten.monitoring.cli import add_commands as add_monitoring_commands

    add_monitoring_commands(commands)
    return parser


@exit_on_input_error
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    setup_logging()
    args.run(args)


if __name__ == "__main__":
    main()
