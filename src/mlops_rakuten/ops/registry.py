"""The model registry: GTO's git tags name versions and stages of the model dvc.yaml declares under
``artifacts:``; DVC fetches the bytes a tag points to from the DVC remote.

A version is the tag ``rakuten-classifier@v1.2.0`` on a commit whose dvc.lock records the model's
md5; a stage is a tag ``rakuten-classifier#prod#N`` on the same commit. A reference
``NAME#STAGE``, ``NAME@vX.Y.Z`` or ``NAME@latest`` is resolved by ``gto show`` (GTO's rules for
which version a stage or "latest" means), then ``dvc artifacts get`` downloads that commit's model.
Everything goes through the ``gto``, ``dvc`` and ``git`` commands, as a person would type them.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from mlops_rakuten.core.atomic import atomic_path
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.paths import METRICS, PARAMS
from mlops_rakuten.ops.commands import output, run
from mlops_rakuten.ops.dvcfiles import file_md5, locked_md5, parse_yaml

log = logging.getLogger("registry")

ARTIFACT = "rakuten-classifier"  # dvc.yaml artifacts: key of the shipped model
GIT_REMOTE = "origin"
_REFERENCE = re.compile(
    r"^(?P<name>[a-z0-9]([a-z0-9-/]*[a-z0-9])?)(?:@(?P<version>latest|v\d+\.\d+\.\d+)"
    r"|#(?P<stage>[a-z0-9]([a-z0-9-]*[a-z0-9])?))$"
)
_VERSION = re.compile(r"^v\d+\.\d+\.\d+$")


@dataclass(frozen=True)
class ResolvedModel:
    """What a reference points to, and where its bytes were put."""

    reference: str
    name: str
    version: str
    stages: list[str]  # every stage this version is in now
    commit: str
    md5: str  # dvc.lock's at ``commit``, checked against the downloaded bytes
    path: str
    params: dict  # params.yaml's model section at ``commit``
    metrics: dict | None  # metrics/metrics.json at ``commit``

    def as_dict(self) -> dict:
        return asdict(self)


def parse_reference(text: str) -> tuple[str, str | None, str | None]:
    """``name#stage`` / ``name@vX.Y.Z`` / ``name@latest`` -> (name, version or "latest" or None, stage or None)."""
    match = _REFERENCE.match(text.strip())
    if not match:
        raise InputError(
            f"model reference {text!r}: expected NAME#STAGE, NAME@vX.Y.Z or NAME@latest, e.g. {ARTIFACT}#prod"
        )
    return match["name"], match["version"], match["stage"]


def _artifact_path(root: Path, commit: str, name: str) -> str:
    try:
        declared = yaml.safe_load(output(["git", "show", f"{commit}:dvc.yaml"], root, f"{name} at {commit[:7]}"))
        return declared["artifacts"][name]["path"]
    except (KeyError, TypeError, yaml.YAMLError):
        raise InputError(f"{name}: not declared under artifacts: in dvc.yaml at {commit[:7]}") from None


def _locked_md5(root: Path, commit: str, path: str) -> str:
    lock = parse_yaml(output(["git", "show", f"{commit}:dvc.lock"], root, f"dvc.lock at {commit[:7]}"))
    md5 = locked_md5(lock, path)
    if md5:
        return md5
    raise InputError(f"{path}: no md5 in dvc.lock at {commit[:7]} (the pipeline was not run before tagging)")


def fetch_tags(root: Path, remote: str = GIT_REMOTE) -> None:
    """Bring the registry's tags up to date; offline, work with the tags this clone has (and say so)."""
    if run(["git", "remote", "get-url", remote], root, check=False).returncode != 0:
        return
    result = run(["git", "fetch", "--quiet", "--tags", "--force", remote], root, check=False, timeout=120)
    if result.returncode != 0:
        log.warning(
            "could not fetch tags from %s, using the local ones: %s",
            remote,
            (result.stderr.strip().splitlines() or ["?"])[-1],
        )


def resolve(reference: str, root: Path) -> tuple[str, str, str, list[str]]:
    """(name, version, commit, stages of that version) for a reference, by GTO's rules."""
    name, version, stage = parse_reference(reference)
    registry = json.loads(output(["gto", "show", "--json"], root, "gto show") or "{}")
    if name not in registry:
        known = ", ".join(sorted(registry)) or "none"
        raise InputError(f"{reference}: no artifact {name!r} in the registry (registered: {known})")
    tag = output(["gto", "show", reference, "--ref"], root, reference).strip()
    if not tag:
        what = f"no version of {name} is in stage {stage!r}" if stage else f"{name} has no version {version}"
        raise InputError(f"{reference}: {what} (`gto show {name}` lists what there is)")
    found = tag.rsplit("@", 1)[-1]
    commit = output(["git", "rev-parse", f"{tag}^{{commit}}"], root, tag).strip()
    versions = json.loads(output(["gto", "show", name, "--json"], root, f"gto show {name}"))
    entry: dict = next((v for v in versions if v.get("version") == found), {})
    stages = sorted({s["stage"] for s in entry.get("stages") or [] if s.get("is_active", True)})
    return name, found, commit, stages


def fetch_model(reference: str, root: Path, dest_dir: Path) -> ResolvedModel:
    """Resolve ``reference`` and download its model into ``dest_dir``; InputError if anything is off.

    The file appears only once its md5 matches the commit's dvc.lock, so a caller never
    loads a partial or wrong model.
    """
    root = Path(root).resolve()
    fetch_tags(root)
    name, version, commit, stages = resolve(reference, root)
    md5 = _locked_md5(root, commit, _artifact_path(root, commit, name))
    dest = Path(dest_dir) / f"{name.replace('/', '_')}@{version}.joblib"
    if not (dest.is_file() and file_md5(dest) == md5):
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dest) as tmp:
            output(
                ["dvc", "artifacts", "get", str(root), name, "--rev", version, "-o", str(tmp), "--force"],
                root,
                f"{reference} ({version}, commit {commit[:7]}): model bytes not fetched from the DVC remote",
            )
            if file_md5(tmp) != md5:
                raise InputError(f"{reference}: downloaded model md5 {file_md5(tmp)} differs from dvc.lock's {md5}")
    log.info(
        "%s is %s %s (commit %s, stages: %s), md5 %s, in %s",
        reference,
        name,
        version,
        commit[:7],
        ", ".join(stages) or "none",
        md5,
        dest,
    )
    return ResolvedModel(
        reference,
        name,
        version,
        stages,
        commit,
        md5,
        str(dest),
        _at_commit(root, commit, PARAMS).get("model") or {},
        _at_commit(root, commit, METRICS) or None,
    )


def _at_commit(root: Path, commit: str, path: str) -> dict:
    """A YAML or JSON file as committed in ``commit``; empty if it is not there."""
    result = run(["git", "show", f"{commit}:{path}"], root, check=False)
    return (parse_yaml(result.stdout) or {}) if result.returncode == 0 else {}


# --- registering: only what anyone can fetch again ---------------------------------------------


def check_registrable(root: Path, name: str = ARTIFACT, remote: str = GIT_REMOTE) -> str:
    """HEAD's commit if its model may be registered; InputError saying what to do first otherwise.

    A version must point to bytes a teammate can fetch: the workspace committed,
    the outputs equal to what dvc.lock records, the model on the DVC remote and
    the commit on the git remote.
    """
    dirty = output(["git", "status", "--porcelain"], root, "git status").strip()
    if dirty:
        first = dirty.splitlines()[0].strip()
        raise InputError(
            f"uncommitted changes ({first}{', ...' if len(dirty.splitlines()) > 1 else ''}): "
            f"commit them (and `dvc push`, `git push`) before registering"
        )
    commit = output(["git", "rev-parse", "HEAD"], root, "git rev-parse").strip()
    path = _artifact_path(root, commit, name)
    stale = json.loads(output(["dvc", "status", "--json"], root, "dvc status") or "{}")
    if stale:
        raise InputError(
            f"the workspace does not match dvc.lock (stages: {', '.join(sorted(stale))}): "
            f"run `dvc repro` (or `dvc checkout`), commit dvc.lock, then register"
        )
    remote_state = json.loads(output(["dvc", "status", "--cloud", "--json", path], root, "dvc status --cloud") or "{}")
    if remote_state:
        raise InputError(f"{path} is not on the DVC remote ({remote_state.get(path, remote_state)}): run `dvc push`")
    if not output(["git", "branch", "--remotes", "--contains", commit], root, "git branch").strip():
        raise InputError(f"commit {commit[:7]} is on no branch of a git remote: run `git push {remote} HEAD`")
    return commit


def register(version: str, root: Path, name: str = ARTIFACT, remote: str = GIT_REMOTE) -> str:
    """Tag HEAD as ``name@version`` with GTO and push the tag; refuse a model others could not fetch."""
    if not _VERSION.match(version or ""):
        raise InputError(f"version {version!r}: expected vMAJOR.MINOR.PATCH, e.g. v1.2.0")
    check_registrable(root, name, remote)
    return output(["gto", "register", name, "--version", version, "--push"], root, f"gto register {version}")
