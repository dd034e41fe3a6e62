"""Experiments that leave the machine: a grid cut into one point per runner, and pushes that report failures.

``sweep_plan`` expands ``dvc exp run -S`` style settings (``model.C=0.1,0.3``) into
one point per combination: the matrix of the sweep workflow, where each CI runner
runs ONE point and pushes it. ``push_experiments`` is ``dvc exp push`` for each
finished run, with a time limit, and a list of the runs that did not get out.

What a push sends: the experiment's git ref (its commit: params, dvc.lock, metrics,
plots) to the git remote, and the DVC-cached outputs of that commit that the DVC
remote lacks. Not the run-cache: the commit and its outputs are all a teammate
needs to apply the run and pull its exact bytes, while ``--run-cache`` uploads the
history of every stage run in this clone, and is where some DVC versions hang on S3.
"""

from __future__ import annotations

import itertools
import logging
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.params import flatten_params
from mlops_rakuten.ops.commands import run

log = logging.getLogger("sweep")

GIT_REMOTE = "origin"
# GitHub's limit for one matrix; more points need several workflow runs.
MAX_POINTS = 256
PUSH_TIMEOUT = 900.0  # seconds; a stalled upload becomes a reported failure, not a stuck runner
_SETTING = re.compile(r"^(?P<key>[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)+)=(?P<values>\S+)$")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Point:
    """One run of a sweep: an experiment name and the ``-S key=value`` settings it runs with."""

    name: str
    settings: tuple[str, ...]

    def as_matrix_entry(self) -> dict[str, str]:
        return {"name": self.name, "params": " ".join(self.settings)}


def parse_setting(text: str, known: set[str]) -> tuple[str, list[str]]:
    """``model.C=0.1,0.3`` -> ("model.C", ["0.1", "0.3"]); InputError naming the setting otherwise."""
    match = _SETTING.match(text.strip())
    if not match:
        raise InputError(
            f"sweep setting {text!r}: expected section.key=value[,value...] with no spaces, e.g. model.C=0.1,0.3,1"
        )
    key, values = match["key"], match["values"].split(",")
    if key not in known:
        section = key.split(".")[0]
        nearby = sorted(k for k in known if k.startswith(f"{section}.")) or sorted(known)
        raise InputError(f"sweep setting {text!r}: params.yaml has no key {key!r} (known: {', '.join(nearby)})")
    if any(not value for value in values) or len(set(values)) != len(values):
        raise InputError(f"sweep setting {text!r}: expected distinct, non-empty values separated by commas")
    for value in values:
        try:
            yaml.safe_load(value)
        except yaml.YAMLError:
            raise InputError(f"sweep setting {text!r}: {value!r} is not a YAML value") from None
    return key, values


def point_name(prefix: str, assignment: list[tuple[str, str]]) -> str:
    """A readable, git-ref-safe experiment name: prefix + each key's last part and its value."""
    parts = [f"{key.rsplit('.', 1)[-1]}-{value}" for key, value in assignment]
    name = _NAME_UNSAFE.sub("_", prefix + "-".join(parts)).strip("._-")
    return name.replace("..", "_")  # git refs may not contain ".."


def sweep_plan(settings: list[str], params_file: Path = Path("params.yaml"), prefix: str = "") -> list[Point]:
    """Every combination of the settings' values, one Point each, in the order the settings list them."""
    if not settings:
        raise InputError("sweep plan: no settings, expected at least one like model.C=0.1,0.3,1")
    try:
        params = yaml.safe_load(Path(params_file).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{params_file}: cannot read the params ({exc})") from None
    axes = [parse_setting(text, set(flatten_params(params))) for text in settings]
    if len({key for key, _ in axes}) != len(axes):
        raise InputError("sweep plan: a key is set twice; give all its values in one setting (a=1,2)")
    count = 1
    for _, values in axes:
        count *= len(values)
    if count > MAX_POINTS:
        raise InputError(f"sweep plan: {count} points, more than the {MAX_POINTS} jobs one matrix can hold")
    points = []
    for combination in itertools.product(*[[(key, value) for value in values] for key, values in axes]):
        points.append(
            Point(point_name(prefix, list(combination)), tuple(f"{key}={value}" for key, value in combination))
        )
    if len({p.name for p in points}) != len(points):
        raise InputError("sweep plan: two points would get the same experiment name; use distinct values")
    return points


# --- pushing finished runs ---------------------------------------------------------------------


@dataclass(frozen=True)
class PushFailure:
    name: str
    reason: str

    def advice(self, git_remote: str) -> str:
        return (
            f"{self.name}: not pushed ({self.reason}). The run is intact in this clone (`dvc exp show`); "
            f"once the remote answers, run: dvc exp push {git_remote} {self.name}"
        )


def _error_line(text: str, default: str) -> str:
    """DVC's last ``ERROR:`` line (it ends its output with a support link), else the last line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")]
    return (errors or lines or [default])[-1]


def push_experiment(
    name: str, git_remote: str = GIT_REMOTE, cwd: Path | None = None, timeout: float = PUSH_TIMEOUT
) -> PushFailure | None:
    """``dvc exp push`` one experiment (ref, then outputs); None on success, else why it failed.

    A push never touches the local experiment, so a failure loses nothing. The
    process group is killed on timeout: DVC's upload threads would outlive a
    plain kill of the parent.
    """
    try:
        result = run(["dvc", "exp", "push", git_remote, name], cwd, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return PushFailure(name, f"no answer within {timeout:.0f}s, push stopped")
    if result.returncode != 0:
        return PushFailure(name, _error_line(result.stderr, f"exit code {result.returncode}"))
    log.info("%s", "; ".join(line.strip() for line in result.stdout.splitlines() if line.strip()))
    return None


def push_experiments(
    names: list[str], git_remote: str = GIT_REMOTE, cwd: Path | None = None, timeout: float = PUSH_TIMEOUT
) -> list[PushFailure]:
    """Push each experiment in turn (one failing does not stop the others); return the failures."""
    failures = []
    for name in names:
        failure = push_experiment(name, git_remote, cwd, timeout)
        if failure:
            log.error("%s", failure.advice(git_remote))
            failures.append(failure)
    return failures
