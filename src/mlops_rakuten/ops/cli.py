"""The ops subcommands of ``rakuten``: raw data, batches and remotes, experiments and sweeps, plots, reports, the registry."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlops_rakuten.core import paths
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.ops.plot_images import PLOT_IMAGES


def _ensure_raw_data(args: argparse.Namespace) -> None:
    from mlops_rakuten.ops.raw_data import ensure_raw_data

    ensure_raw_data(args.raw_dir, args.dvc_file)


def _ingest(args: argparse.Namespace) -> None:
    from mlops_rakuten.ops.ingest import NotRecorded, Refused, ingest
    from mlops_rakuten.ops.project_lock import Busy, state_dir

    project = Path.cwd()
    if not args.file.is_file():
        raise InputError(f"{args.file}: file not found (expected a CSV of labelled products)")
    try:
        # The label screen comes from above (cli.py: monitoring's, with the shipped model); ops has none.
        screen = getattr(args, "screen", None)
        answer = ingest(
            project, state_dir(project), args.file.read_bytes(), str(args.file), args.key, args.source, screen
        )
    except Refused as exc:
        rejects = "".join(f"\n  row {r['row']}: {'; '.join(r['reasons'])}" for r in exc.report["rejects"])
        raise InputError(f"{exc}{rejects}") from None
    except (Busy, NotRecorded) as exc:
        raise InputError(str(exc)) from None
    if args.json:
        print(json.dumps(answer, ensure_ascii=False, indent=2))
        return
    for reject in answer["rejects"]:
        print(f"row {reject['row']} left out: {'; '.join(reject['reasons'])}")
    batch = answer["batch"]
    print(
        f"batch {batch['id']} from {batch['source']}: {batch['status']}, rows {batch['first_index']}.."
        f"{batch['last_index']} ({batch['rows']}, {batch['held_out']} held out for evaluation)"
        + (" (replayed: added before)" if answer.get("replayed") else "")
    )
    checked = batch.get("screen") or {}
    print(f"label screen: {checked.get('reason') or checked.get('skipped') or 'none'}")


def _batches(args: argparse.Namespace) -> None:
    from mlops_rakuten.core.batches import APPROVED, REJECTED, read_batches
    from mlops_rakuten.ops.batches import describe
    from mlops_rakuten.ops.ingest import NotRecorded, decide
    from mlops_rakuten.ops.project_lock import Busy, state_dir

    project = Path.cwd()
    if args.action == "list":
        batches = read_batches(project / paths.RAW_DIR)
        if args.json:
            print(json.dumps([b.as_dict() for b in batches], ensure_ascii=False, indent=2))
        for batch in [] if args.json else batches:
            print(describe(batch))
        return
    status = {"approve": APPROVED, "reject": REJECTED}[args.action]
    try:
        batch = decide(project, state_dir(project), args.id, status)
    except (Busy, NotRecorded) as exc:
        raise InputError(str(exc)) from None
    print(f"{describe(batch)}\n(data/raw recorded: commit data/raw.dvc, then `dvc repro` trains with it)")


def _dagshub_remote(args: argparse.Namespace) -> None:
    from mlops_rakuten.ops.remote import REMOTE, configure_dagshub

    endpoint = configure_dagshub(args.owner, args.repo)
    print(f"DVC remote '{REMOTE}' (default) -> s3://dvc at {endpoint}; token in .dvc/config.local (git-ignored)")


def _data_status(args: argparse.Namespace) -> None:
    from mlops_rakuten.ops.remote import data_status

    sys.exit(data_status())


def _wait_queue(args: argparse.Namespace) -> None:
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
    from mlops_rakuten.ops.sweep import sweep_plan

    points = sweep_plan(args.settings, args.params, args.prefix)
    print(json.dumps([point.as_matrix_entry() for point in points]))


def _push_experiments(args: argparse.Namespace) -> None:
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


def _register(args: argparse.Namespace) -> None:
    from mlops_rakuten.ops.registry import register

    print(register(args.version, Path.cwd(), args.name).strip())


def add_commands(commands) -> None:
    """Add the ops subcommands to the ``rakuten`` parser's subparsers."""
    raw = commands.add_parser("ensure-raw-data", help="dvc pull data/raw, or regenerate the demo set it tracks")
    raw.add_argument("--raw-dir", type=Path, default=Path(paths.RAW_DIR))
    raw.add_argument("--dvc-file", type=Path, default=Path(paths.RAW_POINTER))
    raw.set_defaults(run=_ensure_raw_data)

    ingest = commands.add_parser(
        "ingest",
        help="add a CSV of labelled products to data/raw as one batch (as POST /ingest does)",
        description="Checks the file (columns designation, description, prdtypecode; optionally productid, "
        "imageid), appends its good rows to data/raw's challenge CSVs with a batch record (source, "
        "row range, held-out rows, status) and runs `dvc add data/raw`. A label that is no class, a "
        "product id twice or already in data/raw refuses the whole file, naming the line.",
    )
    ingest.add_argument("file", type=Path, metavar="FILE.csv")
    ingest.add_argument("--source", help="where the batch comes from (default: --key, else the arrival time)")
    ingest.add_argument("--key", help="an idempotency key: the same key and file again adds nothing")
    ingest.add_argument("--json", action="store_true", help="print the answer as JSON, as POST /ingest gives it")
    ingest.set_defaults(run=_ingest)

    batches = commands.add_parser("batches", help="the uploaded batches of data/raw: list, approve, reject")
    actions = batches.add_subparsers(dest="action", required=True, metavar="ACTION")
    listed = actions.add_parser("list", help="every batch: id, status, time, rows, source, why quarantined")
    listed.add_argument("--json", action="store_true")
    for action, what in (("approve", "train on a quarantined batch"), ("reject", "never train on a batch")):
        decision = actions.add_parser(action, help=f"{what} (rewrites the record, `dvc add data/raw`)")
        decision.add_argument("id", type=int, metavar="ID")
    batches.set_defaults(run=_batches)

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
