"""`rakuten retrain`: a candidate from the current data/raw, judged against production on named slices.

0. Nothing new, nothing built: when data/raw at HEAD (data/raw.dvc) has the md5 that production's
   dvc.lock records for it, a candidate could only be production again; the command says so and exits
   with status 5 (NO_NEW_DATA), before freezing anything or running the pipeline.
1. Production is the registry's ``rakuten-classifier#prod`` (any reference can be given).
   Each new batch still accepted is screened again with production (batch_screen.py): one that fails
   now is quarantined and data/raw.dvc committed before anything is built.
2. The frozen evaluation set is data/eval/frozen_test_ids.csv: product ids that the split stage always
   puts in the test split. The first retrain fills it with production's test split and commits it.
3. The candidate is ``dvc exp run --temp``: the whole pipeline on HEAD in a temporary copy, saved as a
   DVC experiment; the workspace is not touched.
4. Both holdout models predict each slice of ``evaluation_products``: the frozen products, and the
   products new since production (in the candidate's test split, absent from production's
   data/interim/products.csv), and with uploaded batches each source's held-out rows and all of them
   together (batch_slices.py). Neither model was fitted on either: production predates the new ones,
   the candidate's holdout model leaves its test split out. The decision (slices.py) refuses the
   candidate only if a slice, or a class in one, is significantly worse, by a bootstrap interval.
5. Accepted: the experiment is applied and committed, pushed (git and DVC) and registered as the next
   minor version with GTO; promoted to prod only with ``--promote`` (RAKUTEN_RETRAIN_PROMOTE=1).
   Refused: nothing changes but the experiment, which stays listed by ``dvc exp show``.
Exit status: 0 registered, 3 refused, 4 accepted but not registered (the report says why: no remote...),
5 no new data since production (nothing built), 1 on an error (the message says which step).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_rakuten.core.batches import read_batches
from mlops_rakuten.core.dataset import read_products
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.predict import load_model
from mlops_rakuten.monitoring.batch_screen import rescreen_new_batches
from mlops_rakuten.monitoring.batch_slices import batch_slices
from mlops_rakuten.monitoring.comparison import compare, predicted_codes, scored, write_report
from mlops_rakuten.monitoring.gate import CLASS_DROP, F1_MARGIN
from mlops_rakuten.monitoring.reference import HOLDOUT_MODEL_PATH, TEST_SPLIT, TRAIN_SPLIT, Built, lock_outs
from mlops_rakuten.monitoring.slices import Decision, Slice
from mlops_rakuten.ops.commands import run
from mlops_rakuten.ops.dvcfiles import locked_dep_md5, parse_yaml, pointer_out
from mlops_rakuten.ops.registry import ARTIFACT, GIT_REMOTE, fetch_tags, register, resolve
from mlops_rakuten.stages.split import read_frozen_ids

log = logging.getLogger("retrain")
FROZEN_IDS = "data/eval/frozen_test_ids.csv"
PRODUCTS = "data/interim/products.csv"  # the ingest stage's output: every product a model's data held
RAW = "data/raw"
FROZEN, NEW = "frozen", "new since production"
REFUSED = 3
NOT_REGISTERED = 4
NO_NEW_DATA = 5


@dataclass
class Outcome:
    accepted: bool
    report: Path | None  # None: nothing compared (no new data)
    experiment: str | None
    version: str | None  # registered version, when accepted and registered
    reason: str = ""  # one line: the decision's, or why nothing was built
    decision: Decision | None = None  # None: no new data, no candidate

    def as_dict(self) -> dict[str, Any]:
        """What ``rakuten retrain --json`` prints."""
        judged = self.decision.as_dict() if self.decision else {"slices": [], "classes": []}
        return {
            **judged,
            "accepted": self.accepted,
            "reason": self.reason,
            "new_data": self.decision is not None,
            "experiment": self.experiment,
            "version": self.version,
            "report": str(self.report) if self.report else None,
        }


@dataclass
class NamedProducts:
    name: str
    products: pd.DataFrame  # labelled, and neither holdout model was fitted on them
    about: str  # where they come from, one line for the report


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


def unchanged_raw(project: Path, production_commit: str) -> str | None:
    """data/raw's md5 when HEAD's is the one production was built from (nothing new), else None."""
    built = locked_dep_md5(parse_yaml(_git(project, "show", f"{production_commit}:dvc.lock")), RAW)
    pointer = run(["git", "show", f"HEAD:{RAW}.dvc"], project, check=False)
    now = pointer_out(parse_yaml(pointer.stdout)).get("md5") if pointer.returncode == 0 else None
    return now if built is not None and now == built else None


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


def evaluation_products(project: Path, production: Built, candidate: Built, frozen: set[int]) -> list[NamedProducts]:
    """The named sets of products the candidate is judged on, the frozen set first.

    The seam for more slices (one per source batch, say): each must be labelled products that neither
    holdout model was fitted on, so taken from the candidate's test split and, unless frozen, absent
    from production's data.
    """
    test = read_products(candidate.file(project, TEST_SPLIT))
    in_frozen = test[test.index.isin(list(frozen))]
    if in_frozen.empty:
        raise InputError(f"none of the {len(frozen)} frozen ids is in the candidate's test split")
    seen = read_products(production.file(project, PRODUCTS)).index
    new = test[~test.index.isin(seen)]
    batches = read_batches(project / RAW)
    trained = read_products(production.file(project, TRAIN_SPLIT)).index if batches else pd.Index([])
    return [
        NamedProducts(FROZEN, in_frozen, f"{len(in_frozen)} products of {FROZEN_IDS} ({len(frozen)} ids)"),
        NamedProducts(
            NEW,
            new,
            f"{len(new)} products of the candidate's test split that production's {PRODUCTS} did not hold "
            f"(production predates them, the candidate's holdout model left them out)",
        ),
        *(NamedProducts(*piece) for piece in batch_slices(test, trained, batches)),
    ]


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
    prod_label = f"{name} {prod_version} ({prod_commit[:7]})"
    same = unchanged_raw(project, prod_commit)
    if same is not None:
        reason = (
            f"no new data: {RAW} at HEAD (md5 {same}) is what production {prod_label} was built from; "
            f"no candidate built"
        )
        log.info(reason)
        return Outcome(False, None, None, None, reason)
    production = _lock_at(project, prod_commit)
    rescreen_new_batches(project, production, prod_commit)  # a batch failing now is quarantined, committed
    frozen = freeze_if_empty(project, production, prod_label)
    experiment = "retrain-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    candidate = run_candidate(project, experiment)
    models = [load_model(built.file(project, HOLDOUT_MODEL_PATH)) for built in (production, candidate)]
    pieces = []
    for named in evaluation_products(project, production, candidate, frozen):
        actual = named.products["prdtypecode"].to_numpy()
        before, after = (
            predicted_codes(model, named.products) if len(actual) else np.zeros(0, actual.dtype) for model in models
        )
        pieces.append((named, Slice(named.name, actual, before, after)))
    frozen_slice = pieces[0][1]
    head = _git(project, "rev-parse", "--short", "HEAD").strip()
    result = compare(
        scored(f"production {prod_label}", frozen_slice.actual, frozen_slice.production),
        scored(f"candidate {experiment} (DVC experiment on {head})", frozen_slice.actual, frozen_slice.candidate),
        frozen_slice.actual,
        [piece for _, piece in pieces],
        {named.name: named.about for named, _ in pieces},
        f1_margin,
        class_drop,
    )
    registered = None
    if result.accepted:
        message = f"Retrain {experiment}: weighted F1, production -> candidate: " + ", ".join(
            f"{s.name} {s.production_f1:.4f} -> {s.candidate_f1:.4f} ({s.n} products)"
            for s in result.decision.slices
            if s.n
        )
        try:
            registered = publish(project, experiment, message, name, version, promote, remote)
            outcome = f"registered as {name} {registered}" + (
                ", promoted to prod"
                if promote
                else " (not promoted: `make promote VERSION=... STAGE=prod`, or retrain --promote)"
            )
        except InputError as exc:
            outcome = f"accepted, but not registered: {exc}"
    else:
        outcome = f"not registered; kept as DVC experiment {experiment} (`dvc exp show`, `dvc exp apply {experiment}`)"
    report = write_report(result, reports, experiment, outcome)
    return Outcome(result.accepted, report, experiment, registered, result.decision.reason, result.decision)
