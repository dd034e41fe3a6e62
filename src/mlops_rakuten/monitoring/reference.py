"""The data a served model was built from, found through dvc.lock by the model's md5.

A logged prediction names its model by the md5 of the model file, which is what dvc.lock records for
models/model.joblib. The workspace's dvc.lock is tried first, then dvc.lock at every commit (tags of
the model registry included): the one that produced that model also names the md5 of the training
split it was fitted on, read from the workspace when it matches, else from the DVC cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from mlops_rakuten.core.errors import InputError
from mlops_rakuten.ops.commands import run
from mlops_rakuten.ops.dvcfiles import file_md5

MODEL_PATH = "models/model.joblib"
HOLDOUT_MODEL_PATH = "models/holdout_model.joblib"
TRAIN_SPLIT = "data/split/train.csv"
TEST_SPLIT = "data/split/test.csv"


@dataclass(frozen=True)
class Built:
    model_md5: str
    commit: str | None  # None: the workspace's dvc.lock
    outs: dict[str, str]  # path -> md5 of every stage output in that dvc.lock

    def file(self, project: Path, path: str) -> Path:
        """That version of ``path``: the workspace file if its bytes match, else the DVC cache's copy."""
        md5 = self.outs.get(path)
        if md5 is None:
            raise InputError(f"dvc.lock{self._where()} records no {path}")
        local = project / path
        if local.is_file() and file_md5(local) == md5:
            return local
        cached = project / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
        if cached.is_file():
            return cached
        raise InputError(
            f"{path} (md5 {md5}, from dvc.lock{self._where()}) is neither in the workspace nor in "
            f"the DVC cache: `dvc pull` at that commit, or `dvc fetch --all-commits`"
        )

    def _where(self) -> str:
        return f" at {self.commit[:12]}" if self.commit else ""


def lock_outs(lock_text: str) -> dict[str, str]:
    lock = yaml.safe_load(lock_text) or {}
    return {
        out["path"]: out["md5"]
        for stage in (lock.get("stages") or {}).values()
        for out in stage.get("outs") or []
        if "md5" in out
    }


def find_build(project: Path, model_md5: str) -> Built:
    """Where the model with this md5 was built; InputError when no dvc.lock in the history produced it."""
    lock = project / "dvc.lock"
    if lock.is_file():
        outs = lock_outs(lock.read_text(encoding="utf-8"))
        if outs.get(MODEL_PATH) == model_md5:
            return Built(model_md5, None, outs)
    commits = run(["git", "log", "--all", "--format=%H", "--", "dvc.lock"], project, check=False).stdout.split()
    for commit in commits:
        shown = run(["git", "show", f"{commit}:dvc.lock"], project, check=False)
        if shown.returncode == 0:
            outs = lock_outs(shown.stdout)
            if outs.get(MODEL_PATH) == model_md5:
                return Built(model_md5, commit, outs)
    raise InputError(
        f"model {model_md5}: no dvc.lock in {project} or its git history records it as {MODEL_PATH}, "
        f"so its training split is unknown"
    )


def latest_build(project: Path, versions: list[str]) -> tuple[Built, list[str]]:
    """The build of the newest of ``versions`` (newest last) that a dvc.lock records, and the newer ones none
    records (a server run from another checkout, a hand-made model): their rows are left out, not fatal."""
    unknown: list[str] = []
    for version in reversed(versions):
        try:
            return find_build(project, version), unknown
        except InputError:
            unknown.append(version)
    raise InputError(
        f"no dvc.lock in {project} or its git history records the model(s) that answered the window "
        f"({', '.join(v[:12] for v in unknown)}), so their training split is unknown"
    )
