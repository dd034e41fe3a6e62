"""The monitoring subcommands of ``rakuten``: predictions export, drift, retrain, monitor."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _export(args: argparse.Namespace) -> None:
    from mlops_rakuten.monitoring.log_files import export_for_ingest, read_window, since_time, unreadable_note
    from mlops_rakuten.monitoring.prediction_log import default_folder

    window = read_window(args.log_dir or default_folder(), since_time(args.since))
    written, skipped = export_for_ingest(window, args.out)
    notes = [f"{skipped} logged without text (RAKUTEN_PREDICTION_LOG=features) left out"] if skipped else []
    notes += [unreadable_note(window.unreadable_lines)] if window.unreadable_lines else []
    note = "".join(f"; {text}" for text in notes)
    print(
        f"wrote {written} product(s) since {window.since.isoformat(timespec='seconds')} to {args.out} "
        f"(fill in prdtypecode, then POST it to /ingest){note}",
        file=sys.stderr,
    )


def _drift(args: argparse.Namespace) -> None:
    from mlops_rakuten.monitoring.drift import as_dict, measure_windows, summary
    from mlops_rakuten.monitoring.log_files import read_window, since_time
    from mlops_rakuten.monitoring.prediction_log import default_folder
    from mlops_rakuten.monitoring.report import write_report

    windows = measure_windows(args.project, read_window(args.log_dir or default_folder(), since_time(args.since)))
    text = "\n\n".join(summary(drift) for _, drift in windows) + f"\nreport: {args.out}"
    write_report(windows, args.out, text)
    if args.json:
        print(json.dumps({"windows": [as_dict(drift) for _, drift in windows]}, indent=2, allow_nan=False))
    else:
        print(text)


def _replay(args: argparse.Namespace) -> None:
    from mlops_rakuten.core.errors import InputError
    from mlops_rakuten.core.predict import load_model
    from mlops_rakuten.monitoring.log_files import since_time
    from mlops_rakuten.monitoring.replay import ReplayModel, read_products, replay
    from mlops_rakuten.ops.dvcfiles import file_md5

    try:
        start = since_time(args.start)
    except InputError as exc:
        raise InputError(str(exc).replace("--since", "--start", 1)) from None
    products = read_products(args.products)
    model = ReplayModel(load_model(args.model), file_md5(args.model))
    done = replay(model, products, args.log_dir, start, args.per_hour)
    refused = f"; {done.no_text} without text left out (/predict refuses them)" if done.no_text else ""
    print(
        f"wrote {done.logged} prediction(s) of model {model.md5} from {done.first} to {done.last} "
        f"into {done.path}{refused}",
        file=sys.stderr,
    )


def _monitor(args: argparse.Namespace) -> None:
    from mlops_rakuten.monitoring.log_files import since_time
    from mlops_rakuten.monitoring.prediction_log import default_folder
    from mlops_rakuten.monitoring.service import Monitor, seconds

    since_time(args.since)  # a bad value stops the service now, not at its first run
    Monitor(
        args.project,
        args.log_dir or default_folder(),
        args.since,
        args.reports,
        seconds(args.retrain_every) if args.retrain_every else None,
    ).serve(args.host, args.port, seconds(args.interval))


def _retrain(args: argparse.Namespace) -> None:
    from mlops_rakuten.monitoring.retrain import NO_NEW_DATA, NOT_REGISTERED, REFUSED, retrain

    promote = args.promote or os.environ.get("RAKUTEN_RETRAIN_PROMOTE") == "1"
    # dvc and gto from this Python's environment, also when the venv is not on PATH (a cron job, a service).
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    outcome = retrain(
        Path.cwd(), args.production, args.reports, args.version, promote, args.f1_margin, args.class_drop, args.remote
    )
    if args.json:
        print(json.dumps(outcome.as_dict(), indent=2, allow_nan=False))
    elif outcome.report is None:
        print(outcome.reason)
    else:
        print(outcome.report.read_text(encoding="utf-8").split("\n\n", 2)[1])
        print(outcome.reason)
        print(f"report: {outcome.report}")  # last: POST /retrain's job reads it
    if outcome.decision is None:
        sys.exit(NO_NEW_DATA)
    if not outcome.accepted:
        sys.exit(REFUSED)
    if outcome.version is None:
        sys.exit(NOT_REGISTERED)


def add_commands(commands) -> None:
    """Add the monitoring subcommands to the ``rakuten`` parser's subparsers."""
    predictions = commands.add_parser("predictions", help="the server's prediction log")
    actions = predictions.add_subparsers(dest="predictions_command", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="logged products as an /ingest CSV with an empty prdtypecode")
    export.add_argument("--since", default="1d", help="30m, 12h, 1d, 2w or an ISO time (default 1d)")
    export.add_argument(
        "--out", type=Path, default=Path("predictions.csv"), help="CSV to write (default predictions.csv)"
    )
    export.add_argument(
        "--log-dir",
        type=Path,
        help="the log folder (default: $RAKUTEN_PREDICTION_LOG_DIR, "
        "else $RAKUTEN_STATE_DIR/predictions, else .dvc/tmp/serve/predictions)",
    )
    export.set_defaults(run=_export)

    replay = actions.add_parser(
        "replay",
        help="write the log the server would have written had it answered PRODUCTS.csv at --per-hour from --start",
    )
    replay.add_argument("products", type=Path, metavar="PRODUCTS.csv", help="products in the /ingest format")
    replay.add_argument("--log-dir", type=Path, required=True, help="folder to write the log file into")
    replay.add_argument("--start", required=True, help="time of the first answer: ISO time, or 30m, 12h, 1d ago")
    replay.add_argument("--per-hour", type=float, required=True, help="products answered an hour")
    replay.add_argument(
        "--model", type=Path, default=Path("models/model.joblib"), help="model (default models/model.joblib)"
    )
    replay.set_defaults(run=_replay)

    log_dir = {"type": Path, "help": "the prediction log folder (default as for predictions export)"}
    drift = commands.add_parser(
        "drift",
        help="logged predictions vs the served model's training split, over a short window (the last hour, at "
        "least the last 1,000 products) and the long one: HTML report and a summary (docs/monitoring.md)",
    )
    drift.add_argument(
        "--since", default="1d", help="long window's start: 30m, 12h, 1d, 2w or an ISO time (default 1d)"
    )
    drift.add_argument(
        "--out", type=Path, default=Path("reports/drift.html"), help="HTML report (default reports/drift.html)"
    )
    drift.add_argument("--project", type=Path, default=Path("."), help="the DVC project (default: here)")
    drift.add_argument("--log-dir", **log_dir)
    drift.add_argument(
        "--json", action="store_true", help="print every window's and signal's test as JSON instead of the summary"
    )
    drift.set_defaults(run=_drift)

    from mlops_rakuten.monitoring.gate import CLASS_DROP, F1_MARGIN

    retrain = commands.add_parser(
        "retrain",
        help="build a candidate from data/raw, compare it with production on the frozen set and the "
        "new products, register it unless significantly worse",
        description="Exit status: 0 registered, 3 refused (kept as a DVC experiment), "
        "4 accepted but not registered, 5 no new data since production (nothing built), 1 error. "
        "docs/monitoring.md",
    )
    retrain.add_argument(
        "--production",
        default="rakuten-classifier#prod",
        help="registry reference of the model to beat (default rakuten-classifier#prod)",
    )
    retrain.add_argument(
        "--reports", type=Path, default=Path("reports"), help="folder for the report (default reports)"
    )
    retrain.add_argument("--version", help="version to register (default: the next minor version)")
    retrain.add_argument(
        "--promote",
        action="store_true",
        help="also assign the registered version to prod (default: never; RAKUTEN_RETRAIN_PROMOTE=1 does the same)",
    )
    retrain.add_argument(
        "--f1-margin",
        type=float,
        default=F1_MARGIN,
        help=f"refused if a slice's weighted F1 change is surely below minus this (default {F1_MARGIN})",
    )
    retrain.add_argument(
        "--class-drop",
        type=float,
        default=CLASS_DROP,
        help=f"refused if a class's F1 change is surely below minus this (default {CLASS_DROP})",
    )
    retrain.add_argument("--json", action="store_true", help="print the decision and every slice as JSON")
    retrain.add_argument("--remote", default="origin", help="git remote to push to (default origin)")
    retrain.set_defaults(run=_retrain)

    monitor = commands.add_parser(
        "monitor",
        help="run drift on a schedule and serve its scores to Prometheus",
        description="Defaults come from RAKUTEN_MONITOR_INTERVAL, RAKUTEN_MONITOR_WINDOW and "
        "RAKUTEN_RETRAIN_EVERY when set (the container stack sets them).",
    )
    env = os.environ
    monitor.add_argument(
        "--interval", default=env.get("RAKUTEN_MONITOR_INTERVAL") or "5m", help="time between drift runs (default 5m)"
    )
    monitor.add_argument(
        "--since",
        default=env.get("RAKUTEN_MONITOR_WINDOW") or "1d",
        help="long window of each run (default 1d; the short one is the last hour, at least 1,000 products)",
    )
    monitor.add_argument("--reports", type=Path, default=Path("reports"), help="folder for the latest reports")
    monitor.add_argument(
        "--retrain-every",
        default=env.get("RAKUTEN_RETRAIN_EVERY") or None,
        help="also run the gated retrain this often, e.g. 7d (default: never)",
    )
    monitor.add_argument("--host", default="127.0.0.1", help="metrics address (default 127.0.0.1)")
    monitor.add_argument("--port", type=int, default=9108, help="metrics port (default 9108)")
    monitor.add_argument("--project", type=Path, default=Path("."), help="the DVC project (default: here)")
    monitor.add_argument("--log-dir", **log_dir)
    monitor.set_defaults(run=_monitor)
