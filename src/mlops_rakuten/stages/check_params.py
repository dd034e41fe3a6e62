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


def restore_hint(params: Path) -> str:
    """What happened, and the command that undoes `dvc exp run -S` when params.yaml differs from HEAD."""
    done = "No other stage ran and no output was removed."
    changes = changes_since_commit(params)
    if not changes:
        return f"{done} Fix {params} and run again."
    # Not `git checkout`: after `dvc exp run`, git's index can hold the stat of the edited file, and
    # git then skips a same-size edit made within the same second as "unchanged".
    listed = ", ".join(changes[:4]) + (", ..." if len(changes) > 4 else "")
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
