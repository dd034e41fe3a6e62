"""Stage check_params: check every key of params.yaml before any other stage runs.

DVC deletes a stage's outputs before it runs the stage's command, so a bad
value found by ``train`` itself (``dvc exp run -S model.C=big``) would cost the
workspace its models. This stage is first in the pipeline (``ingest`` depends
on its output), so a bad or unknown key stops ``dvc repro`` / ``dvc exp run``
here, before any other stage starts and before any output is removed.

Its output is a fixed text: rewriting it after a param change leaves its hash
as it was, so stages that do not read the changed section still skip. It is
``persist``ed, so DVC does not delete it either when the check fails.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import yaml

from mlops_rakuten.core.atomic import atomic_open
from mlops_rakuten.core.errors import InputError, exit_skipping_teardown, setup_logging
from mlops_rakuten.core.params import as_yaml, flatten_params, read_all_params
from mlops_rakuten.ops.commands import run

log = logging.getLogger("check_params")
PASSED = "params.yaml passed the checks of src/mlops_rakuten/core/params.py\n"


def changes_since_commit(params: Path) -> list[str] | None:
    """``key: committed -> now`` for each key that differs from HEAD's params file; None outside git."""
    committed = run(["git", "show", f"HEAD:./{params}"], None, check=False, text=False)
    if committed.returncode != 0:
        return None
    if committed.stdout == params.read_bytes():
        return []
    try:
        before = flatten_params(yaml.safe_load(committed.stdout))
        now = flatten_params(yaml.safe_load(params.read_bytes()))
    except yaml.YAMLError:
        return ["(not valid YAML now)"]
    missing = object()

    def shown(value: object) -> str:
        return "(absent)" if value is missing else as_yaml(value)

    keys = list(before) + [key for key in now if key not in before]
    return [
        f"{key} {shown(before.get(key, missing))} -> {shown(now.get(key, missing))}"
        for key in keys
        if before.get(key, missing) != now.get(key, missing)
    ] or ["formatting only"]


def in_temporary_copy() -> bool:
    """True when DVC runs the stage in a copy of the workspace (`dvc exp run --temp`, a queued run)."""
    # DVC_ROOT names the user's workspace, also for a stage that runs in .dvc/tmp/exps/...
    root = os.environ.get("DVC_ROOT")
    return root is not None and Path(root).resolve() != Path.cwd().resolve()


def restore_hint(params: Path) -> str:
    """What happened, and the command that undoes `dvc exp run -S` when params.yaml differs from HEAD."""
    done = "No other stage ran and no output was removed."
    changes = changes_since_commit(params)
    listed = ", ".join(changes[:4]) + (", ..." if len(changes) > 4 else "") if changes else ""
    if in_temporary_copy():
        where = "This run was in a temporary copy of the workspace (`dvc exp run --temp` or the queue)"
        differs = f", where {params} differs from the last commit: {listed}" if changes else ""
        return f"{done}\n{where}{differs}.\nThe workspace's {params} was not changed: fix the value and run again."
    if not changes:
        return f"{done} Fix {params} and run again."
    # Not `git checkout` nor `git restore`: after `dvc exp run`, git's index can hold the stat of the
    # edited file, and git then skips a same-size edit made within the same second as "unchanged".
    return (
        f"{done}\n{params} differs from the last commit (edited by hand or by `dvc exp run -S`): {listed}.\n"
        f"Fix the value and run again, or restore the committed file: git show HEAD:{params} > {params}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path, help="written (always the same text) when every key passes")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        sections = read_all_params(args.params)
    except InputError as exc:
        print(f"error: {exc}\n{restore_hint(args.params)}", file=sys.stderr)
        sys.exit(1)
    with atomic_open(args.out) as out:
        out.write(PASSED)
    log.info("%s: %d keys in %d sections checked", args.params, sum(map(len, sections.values())), len(sections))


if __name__ == "__main__":
    main()
    exit_skipping_teardown()
