"""Registering (ops/registry.py's check_registrable and register) against a scripted git, gto and dvc:
only a model anyone can fetch again is tagged, and every refusal says what to do first.
"""

from __future__ import annotations

import pytest

from mlops_rakuten.ops.registry import ARTIFACT, check_registrable, register
from test_registry_checks import COMMIT, DVC_YAML, Shell, refused

CLOUD = ("dvc", "status", "--cloud", "--json", "models/model.joblib")
BRANCHES = ("git", "branch", "--remotes", "--contains", COMMIT)


def clean(changes: dict | None = None) -> dict:
    """A workspace that may be registered: committed, reproduced, pushed to both remotes."""
    answers = {
        ("git", "status", "--porcelain"): "",
        ("git", "rev-parse", "HEAD"): COMMIT + "\n",
        ("git", "show", f"{COMMIT}:dvc.yaml"): DVC_YAML,
        CLOUD: "{}",
        ("dvc", "status", "--json"): "{}",
        BRANCHES: "  origin/main\n",
        ("gto", "register", ARTIFACT, "--version", "v1.2.0", "--push"): "Created git tag",
    }
    return {**answers, **(changes or {})}


def test_a_clean_pushed_workspace_is_registered(monkeypatch, tmp_path):
    shell = Shell(monkeypatch, clean(), tmp_path)
    assert check_registrable(tmp_path) == COMMIT
    assert register("v1.2.0", tmp_path) == "Created git tag"
    assert shell.calls[-1] == ["gto", "register", ARTIFACT, "--version", "v1.2.0", "--push"]


@pytest.mark.parametrize(
    "answer, message",
    [
        (
            {("git", "status", "--porcelain"): " M params.yaml\n"},
            "uncommitted changes (M params.yaml): commit them (and `dvc push`, `git push`) before registering",
        ),
        (
            {("git", "status", "--porcelain"): " M params.yaml\n?? new.txt\n"},
            "uncommitted changes (M params.yaml, ...): commit them (and `dvc push`, `git push`) before registering",
        ),
        (
            {("dvc", "status", "--json"): '{"train": [], "evaluate": []}'},
            "the workspace does not match dvc.lock (stages: evaluate, train): run `dvc repro` (or `dvc checkout`), "
            "commit dvc.lock, then register",
        ),
        (
            {CLOUD: '{"models/model.joblib": "new"}'},
            "models/model.joblib is not on the DVC remote (new): run `dvc push`",
        ),
        (
            {CLOUD: '{"other": "deleted"}'},
            "models/model.joblib is not on the DVC remote ({'other': 'deleted'}): run `dvc push`",
        ),
        (
            {BRANCHES: "\n"},
            "commit 0123456 is on no branch of a git remote: run `git push origin HEAD`",
        ),
    ],
    ids=["dirty", "dirty-more", "stale", "not-pushed", "not-pushed-other", "no-remote-branch"],
)
def test_a_model_others_could_not_fetch_is_refused(monkeypatch, tmp_path, answer, message):
    shell = Shell(monkeypatch, clean(answer), tmp_path)
    assert refused(lambda: register("v1.2.0", tmp_path)) == message
    assert not [c for c in shell.calls if c[0] == "gto"]


def test_empty_dvc_answers_mean_nothing_to_do(monkeypatch, tmp_path):
    Shell(monkeypatch, clean({CLOUD: "", ("dvc", "status", "--json"): ""}), tmp_path)
    assert check_registrable(tmp_path) == COMMIT


@pytest.mark.parametrize("version", ["1.2.0", "v1.2", "v1.2.0-rc1", "", None])
def test_a_version_must_be_v_major_minor_patch(monkeypatch, tmp_path, version):
    shell = Shell(monkeypatch, clean(), tmp_path)
    assert refused(lambda: register(version, tmp_path)) == (
        f"version {version!r}: expected vMAJOR.MINOR.PATCH, e.g. v1.2.0"
    )
    assert shell.calls == []


def test_register_names_the_remote_to_push_to(monkeypatch, tmp_path):
    Shell(monkeypatch, clean({BRANCHES: ""}), tmp_path)
    assert refused(lambda: register("v1.2.0", tmp_path, remote="team")).endswith("run `git push team HEAD`")


@pytest.mark.parametrize(
    "command, says",
    [
        (("git", "status", "--porcelain"), "git status"),
        (("git", "rev-parse", "HEAD"), "git rev-parse"),
        (("dvc", "status", "--json"), "dvc status"),
        (CLOUD, "dvc status --cloud"),
        (BRANCHES, "git branch"),
        (("gto", "register", ARTIFACT, "--version", "v1.2.0", "--push"), "gto register v1.2.0"),
    ],
)
def test_a_failing_command_while_registering_is_named(monkeypatch, tmp_path, command, says):
    Shell(monkeypatch, clean({command: (1, "ERROR: boom")}), tmp_path)
    assert refused(lambda: register("v1.2.0", tmp_path)) == f"{says}: boom"
