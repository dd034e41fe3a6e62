"""`rakuten retrain`: a candidate from the current data/raw, gated against production on a frozen set.

1. Production is the registry's ``rakuten-classifier#prod`` (any reference can be given).
2. The frozen evaluation set is data/eval/frozen_test_ids.csv: product ids that the split stage always
   puts in the test split. The first retrain fills it with production's test split and commits it.
3. The candidate is ``dvc exp run --temp``: the whole pipeline on HEAD in a temporary copy, saved as a
   DVC experiment; the workspace is not touched.
4. Both holdout models (fitted on their train split, so neither saw a frozen product) predict the frozen
   products; the gate (comparison.py) decides.
5. Accepted: the experiment is applied and committed, pushed (git and DVC) and registered as the next
   minor version with GTO; promoted to prod only with ``--promote`` (RAKUTEN_RETRAIN_PROMOTE=1).
   Refused: nothing changes but the experiment, which stays listed by ``dvc exp show``.
Exit status: 0 registered, 3 refused, 4 accepted but not registered (the report says why: no remote...),
1 on an error (the message says which step).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from mlops_rakuten.core.dataset import read_products
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.predict import load_model
from mlops_rakuten.monitoring.comparison import compare, score, write_report
from mlops_rakuten.monitoring.gate import CLASS_DROP, F1_MARGIN
from mlops_rakuten.monitoring.reference import HOLDOUT_MODEL_PATH, TEST_SPLIT, Built, lock_outs
from mlops_rakuten.ops.commands import run
from mlops_rakuten.ops.registry import ARTIFACT, GIT_REMOTE, fetch_tags, register, resolve
from mlops_rakuten.stages.split import read_frozen_ids

log = logging.getLogger("retrain")
FROZEN_IDS = "data/eval/frozen_test_ids.csv"
REFUSED = 3
NOT_REGISTERED = 4


@dataclass
class Outcome:
    accepted: bool
    report: Path
    experiment: str
    version: str | None  # registered version, when accepted and registered


def _git(project: Path, *args: str) -> str:
    done = run(["git", *args], project, check=False)
    if done.returncode != 0:
        raise InputError(f"git {' '.join(args)}: {(done.stderr.strip().splitlines() or ['failed'])[-1]}")
    return done.stdout


def _step(project: Path, cmd: list[str], what: str) -> str:
    done = run(cmd, project, check=False)
    if done.returncode != 0:
        tail = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()][-3:]
        raise InputError(f"{what} failed: {' | '.join(tail) or f'exit code {done.returncode}'}")
    return done.stdout


def _lock_at(project: Path, commit: str) -> Built:
    return Built("", commit, lock_outs(_git(project, "show", f"{commit}:dvc.lock")))


def freeze_if_empty(project: Path, production: Built, label: str) -> set[int]:
    """The frozen ids; the first time, production's test split ids, committed."""
    frozen = read_frozen_ids(project / FROZEN_IDS)
    if frozen:
        return frozen
    ids = sorted(read_products(production.file(project, TEST_SPLIT)).index)
    path = project / FROZEN_IDS
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"id": ids}).to_csv(path, index=False, lineterminator="\n")
    _git(project, "add", FROZEN_IDS)
    _git(
        project,
        "commit",
        "-q",
        "-m",
        f"Freeze the evaluation set: the {len(ids)} products of the test split of {label}",
    )
    log.info("froze the evaluation set: %d products of %s's test split, committed", len(ids), label)
    return set(ids)


def run_candidate(project: Path, name: str) -> Built:
    """The pipeline on HEAD as a DVC experiment in a temporary copy; its dvc.lock."""
    log.info("building the candidate: dvc exp run --temp --name %s", name)
    _step(project, ["dvc", "exp", "run", "--temp", "--name", name], "dvc exp run (the candidate's pipeline)")
    refs = _git(project, "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps").splitlines()
    commit = next((line.split()[0] for line in refs if line.endswith(f"/{name}")), None)
    if commit is None:
        raise InputError(f"experiment {name} finished but no refs/exps ref names it")
    return _lock_at(project, commit)


def next_version(project: Path, name: str) -> str:
    versions = json.loads(_step(project, ["gto", "show", name, "--json"], "gto show") or "[]")
    numbers = [
        tuple(int(p) for p in v["version"][1:].split("."))
        for v in versions
        if re.fullmatch(r"v\d+\.\d+\.\d+", v.get("version", ""))
    ]
    major, minor, _ = max(numbers, default=(1, -1, 0))
    return f"v{major}.{minor + 1}.0"


def publish(
    project: Path, experiment: str, message: str, name: str, version: str | None, promote: bool, remote: str
) -> str:
    """Apply, commit, push and register the accepted candidate; its version."""
    _step(project, ["dvc", "exp", "apply", experiment], "dvc exp apply")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", message)
    _step(project, ["dvc", "push", "-q"], "dvc push (the candidate's model to the DVC remote)")
    _git(project, "push", "-q", remote, "HEAD")
    version = version or next_version(project, name)
    register(version, project, name, remote)
    if promote:
        _step(project, ["gto", "assign", name, "--version", version, "--stage", "prod", "--push"], "gto assign prod")
    return version


def retrain(
    project: Path,
    production_ref: str = f"{ARTIFACT}#prod",
    reports: Path = Path("reports"),
    version: str | None = None,
    promote: bool = False,
    f1_margin: float = F1_MARGIN,
    class_drop: float = CLASS_DROP,
    remote: str = GIT_REMOTE,
) -> Outcome:
    project = project.resolve()
    if _git(project, "status", "--porcelain").strip():
        raise InputError(
            "uncommitted changes: commit them first (the candidate is built from HEAD, and an "
            "accepted one is committed on top of it)"
        )
    fetch_tags(project, remote)
    name, prod_version, prod_commit, _ = resolve(production_ref, project)
    production = _lock_at(project, prod_commit)
    prod_label = f"{name} {prod_version} ({prod_commit[:7]})"
    frozen = freeze_if_empty(project, production, prod_label)
    experiment = "retrain-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    candidate = run_candidate(project, experiment)
    products = read_products(candidate.file(project, TEST_SPLIT))
    products = products[products.index.isin(list(frozen))]
    if products.empty:
        raise InputError(f"none of the {len(frozen)} frozen ids is in the candidate's test split")
    result = compare(
        score(f"production {prod_label}", load_model(production.file(project, HOLDOUT_MODEL_PATH)), products),
        score(
            f"candidate {experiment} (DVC experiment on {_git(project, 'rev-parse', '--short', 'HEAD').strip()})",
            load_model(candidate.file(project, HOLDOUT_MODEL_PATH)),
            products,
        ),
        products["prdtypecode"].to_numpy(),
        f1_margin,
        class_drop,
    )
    frozen_text = f"{len(products)} frozen products ({FROZEN_IDS}, {len(frozen)} ids)"
    registered = None
    if result.accepted:
        message = (
            f"Retrain {experiment}: weighted F1 {result.candidate.metrics['f1_weighted']:.4f} vs production "
            f"{result.production.metrics['f1_weighted']:.4f} on {len(products)} frozen products"
        )
        try:
            registered = publish(project, experiment, message, name, version, promote, remote)
            outcome = f"registered as {name} {registered}" + (
                ", promoted to prod"
                if promote
                else " (not promoted: `make promote VERSION=... STAGE=prod`, or retrain --promote)"
            )
        except InputError as exc:
            outcome = f"not worse than production, but not registered: {exc}"
    else:
        outcome = f"not registered; kept as DVC experiment {experiment} (`dvc exp show`, `dvc exp apply {experiment}`)"
    report = write_report(result, reports, experiment, frozen_text, outcome)
    return Outcome(result.accepted, report, experiment, registered)
