"""What the registry (ops/registry.py) checks and refuses, against a scripted git, gto and dvc.

tests/test_registry.py proves the real commands end to end (minutes, a real remote); here each
command's answer is given by the test, so every refusal and its message is checked in milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from pathlib import Path

import pytest

import mlops_rakuten.ops.commands as commands
import mlops_rakuten.ops.registry as registry
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.ops.registry import (
    ARTIFACT,
    fetch_model,
    fetch_tags,
    parse_reference,
    resolve,
)

COMMIT = "0123456789abcdef0123456789abcdef01234567"
MODEL = b"model bytes"
MD5 = hashlib.md5(MODEL).hexdigest()
DVC_YAML = f"artifacts:\n  {ARTIFACT}:\n    path: models/model.joblib\n"
DVC_LOCK = f"stages:\n  train:\n    outs:\n    - path: models/model.joblib\n      md5: {MD5}\n"


class Shell:
    """Answers commands from a table: the longest key that starts the command wins; unknown ones fail."""

    def __init__(self, monkeypatch, answers: dict[tuple[str, ...], tuple[int, str] | str], root: Path):
        self.answers = answers
        self.root = root.resolve()
        self.calls: list[list[str]] = []
        self.timeouts: list[float | None] = []
        monkeypatch.setattr(commands, "run", self.run)
        monkeypatch.setattr(registry, "run", self.run)

    def run(self, cmd, cwd, check=True, *, timeout=None, **_) -> subprocess.CompletedProcess:
        assert cwd is not None and Path(cwd).resolve() == self.root, f"{cmd} run in {cwd}, not in the project"
        self.calls.append(cmd)
        self.timeouts.append(timeout)
        result = self.answer(cmd)
        if check and result.returncode != 0:  # as the real run() does
            raise RuntimeError(f"{cmd} failed")
        return result

    def answer(self, cmd: list[str]) -> subprocess.CompletedProcess:
        for prefix, answer in sorted(self.answers.items(), key=lambda item: -len(item[0])):
            if tuple(cmd[: len(prefix)]) == prefix:
                code, out = (0, answer) if isinstance(answer, str) else answer
                if cmd[:3] == ["dvc", "artifacts", "get"] and code == 0:
                    Path(cmd[cmd.index("-o") + 1]).write_bytes(out.encode())
                    out = ""
                return subprocess.CompletedProcess(cmd, code, out if code == 0 else "", "" if code == 0 else out)
        return subprocess.CompletedProcess(cmd, 1, "", f"ERROR: unexpected command {' '.join(cmd)}")


def refused(call) -> str:
    with pytest.raises(InputError) as caught:
        call()
    return str(caught.value)


@pytest.mark.parametrize(
    "text, parsed",
    [
        (f"{ARTIFACT}#prod", (ARTIFACT, None, "prod")),
        (f" {ARTIFACT}@v1.20.3 ", (ARTIFACT, "v1.20.3", None)),
        ("team/model-2@latest", ("team/model-2", "latest", None)),
        ("m#dev-2", ("m", None, "dev-2")),
    ],
)
def test_a_reference_names_a_stage_a_version_or_latest(text, parsed):
    assert parse_reference(text) == parsed


@pytest.mark.parametrize(
    "text", ["rakuten-classifier", "m@1.2.0", "m@v1.2", "M#prod", "m#prod-", "m-#prod", "m#", "m@v1.2.0#prod", ""]
)
def test_anything_else_is_refused_with_an_example(text):
    assert refused(lambda: parse_reference(text)) == (
        f"model reference {text!r}: expected NAME#STAGE, NAME@vX.Y.Z or NAME@latest, e.g. rakuten-classifier#prod"
    )


def registered(monkeypatch, root: Path, changes: dict | None = None) -> Shell:
    """A registry where v1.0.0 is in prod and staging (and once was in dev), all on COMMIT."""
    versions = [
        {"version": "v0.9.0", "stages": [{"stage": "old", "is_active": True}]},
        {
            "version": "v1.0.0",
            "stages": [
                {"stage": "staging"},
                {"stage": "prod", "is_active": True},
                {"stage": "dev", "is_active": False},
            ],
        },
    ]
    answers: dict = {
        ("git", "remote", "get-url", "origin"): (1, "error: No such remote 'origin'"),
        ("gto", "show", "--json"): json.dumps({ARTIFACT: {}, "other": {}}),
        ("gto", "show", f"{ARTIFACT}#prod", "--ref"): f"{ARTIFACT}@v1.0.0\n",
        ("gto", "show", f"{ARTIFACT}@v1.0.0", "--ref"): f"{ARTIFACT}@v1.0.0\n",
        ("git", "rev-parse", f"{ARTIFACT}@v1.0.0^{{commit}}"): COMMIT + "\n",
        ("gto", "show", ARTIFACT, "--json"): json.dumps(versions),
        ("git", "show", f"{COMMIT}:dvc.yaml"): DVC_YAML,
        ("git", "show", f"{COMMIT}:dvc.lock"): DVC_LOCK,
        ("git", "show", f"{COMMIT}:params.yaml"): "model:\n  C: 2.0\nother: 1\n",
        ("git", "show", f"{COMMIT}:metrics/metrics.json"): '{"f1_weighted": 0.8}',
        ("dvc", "artifacts", "get"): MODEL.decode(),
    }
    return Shell(monkeypatch, {**answers, **(changes or {})}, root)


def test_resolve_follows_gtos_answer_to_the_versions_commit_and_active_stages(monkeypatch, tmp_path):
    registered(monkeypatch, tmp_path)
    assert resolve(f"{ARTIFACT}#prod", tmp_path) == (ARTIFACT, "v1.0.0", COMMIT, ["prod", "staging"])


def test_resolve_refuses_an_unknown_artifact_or_a_reference_pointing_nowhere(monkeypatch, tmp_path):
    registered(monkeypatch, tmp_path, {("gto", "show", "nope#prod", "--ref"): ""})
    assert refused(lambda: resolve("nope#prod", tmp_path)) == (
        f"nope#prod: no artifact 'nope' in the registry (registered: other, {ARTIFACT})"
    )
    Shell(monkeypatch, {("gto", "show", "--json"): ""}, tmp_path)
    assert refused(lambda: resolve("nope#prod", tmp_path)).endswith("(registered: none)")
    registered(monkeypatch, tmp_path, {("gto", "show", f"{ARTIFACT}#qa", "--ref"): "\n"})
    assert refused(lambda: resolve(f"{ARTIFACT}#qa", tmp_path)) == (
        f"{ARTIFACT}#qa: no version of {ARTIFACT} is in stage 'qa' (`gto show {ARTIFACT}` lists what there is)"
    )
    registered(monkeypatch, tmp_path, {("gto", "show", f"{ARTIFACT}@v9.9.9", "--ref"): ""})
    assert refused(lambda: resolve(f"{ARTIFACT}@v9.9.9", tmp_path)) == (
        f"{ARTIFACT}@v9.9.9: {ARTIFACT} has no version v9.9.9 (`gto show {ARTIFACT}` lists what there is)"
    )


def test_a_version_gto_lists_without_stages_has_none(monkeypatch, tmp_path):
    registered(monkeypatch, tmp_path, {("gto", "show", ARTIFACT, "--json"): json.dumps([{"version": "v1.0.0"}])})
    assert resolve(f"{ARTIFACT}@v1.0.0", tmp_path)[3] == []


def test_fetch_model_downloads_checks_and_describes_the_version(monkeypatch, tmp_path, caplog):
    shell = registered(monkeypatch, tmp_path)
    with caplog.at_level(logging.INFO, logger="registry"):
        model = fetch_model(f"{ARTIFACT}#prod", tmp_path, tmp_path / "models" / "registry")
    dest = tmp_path / "models" / "registry" / f"{ARTIFACT}@v1.0.0.joblib"
    assert model.as_dict() == {
        "reference": f"{ARTIFACT}#prod",
        "name": ARTIFACT,
        "version": "v1.0.0",
        "stages": ["prod", "staging"],
        "commit": COMMIT,
        "md5": MD5,
        "path": str(dest),
        "params": {"C": 2.0},
        "metrics": {"f1_weighted": 0.8},
    }
    assert dest.read_bytes() == MODEL and [p.name for p in dest.parent.iterdir()] == [dest.name]
    (get,) = [c for c in shell.calls if c[:3] == ["dvc", "artifacts", "get"]]
    assert get[3:8] == [str(tmp_path), ARTIFACT, "--rev", "v1.0.0", "-o"] and get[-1] == "--force"
    assert caplog.messages == [
        f"{ARTIFACT}#prod is {ARTIFACT} v1.0.0 (commit 0123456, stages: prod, staging), md5 {MD5}, in {dest}"
    ]
    shell.calls.clear()
    fetch_model(f"{ARTIFACT}#prod", tmp_path, tmp_path / "models" / "registry")  # already there with the right md5
    assert not [c for c in shell.calls if c[:2] == ["dvc", "artifacts"]]


def test_a_model_whose_bytes_differ_from_dvc_lock_is_never_left_behind(monkeypatch, tmp_path):
    registered(monkeypatch, tmp_path, {("dvc", "artifacts", "get"): "other bytes"})
    wrong = hashlib.md5(b"other bytes").hexdigest()
    assert refused(lambda: fetch_model(f"{ARTIFACT}@v1.0.0", tmp_path, tmp_path / "m")) == (
        f"{ARTIFACT}@v1.0.0: downloaded model md5 {wrong} differs from dvc.lock's {MD5}"
    )
    assert list((tmp_path / "m").iterdir()) == []
    (tmp_path / "m" / f"{ARTIFACT}@v1.0.0.joblib").write_bytes(b"stale")  # a wrong file in place is replaced
    registered(monkeypatch, tmp_path)
    assert Path(fetch_model(f"{ARTIFACT}@v1.0.0", tmp_path, tmp_path / "m").path).read_bytes() == MODEL


def test_a_failed_download_names_the_version_and_commit(monkeypatch, tmp_path):
    registered(monkeypatch, tmp_path, {("dvc", "artifacts", "get"): (1, "ERROR: failed to pull from the remote")})
    assert refused(lambda: fetch_model(f"{ARTIFACT}#prod", tmp_path, tmp_path / "m")) == (
        f"{ARTIFACT}#prod (v1.0.0, commit 0123456): model bytes not fetched from the DVC remote: "
        "failed to pull from the remote"
    )


def test_a_name_with_a_slash_is_a_file_name_without_one(monkeypatch, tmp_path, caplog):
    name = "team/model"
    registered(
        monkeypatch,
        tmp_path,
        {
            ("gto", "show", "--json"): json.dumps({name: {}}),
            ("gto", "show", f"{name}#prod", "--ref"): f"{name}@v1.0.0",
            ("git", "rev-parse"): COMMIT,
            ("gto", "show", name, "--json"): "[]",
            ("git", "show", f"{COMMIT}:dvc.yaml"): DVC_YAML.replace(ARTIFACT, name),
            ("git", "show", f"{COMMIT}:params.yaml"): (128, "fatal: path not in commit"),
            ("git", "show", f"{COMMIT}:metrics/metrics.json"): "",
        },
    )
    with caplog.at_level(logging.INFO, logger="registry"):
        model = fetch_model(f"{name}#prod", tmp_path, tmp_path)
    assert Path(model.path).name == "team_model@v1.0.0.joblib"
    assert "(commit 0123456, stages: none)" in caplog.messages[-1]
    assert (model.params, model.metrics, model.stages) == ({}, None, [])


@pytest.mark.parametrize(
    "dvc_yaml",
    ["stages: {}\n", "artifacts:\n  other:\n    path: x\n", f"artifacts:\n  {ARTIFACT}: just-a-path\n", "[unclosed\n"],
    ids=["no-artifacts", "other-artifact", "no-path", "not-yaml"],
)
def test_a_commit_whose_dvc_yaml_does_not_declare_the_model_is_refused(monkeypatch, tmp_path, dvc_yaml):
    registered(monkeypatch, tmp_path, {("git", "show", f"{COMMIT}:dvc.yaml"): dvc_yaml})
    assert refused(lambda: fetch_model(f"{ARTIFACT}#prod", tmp_path, tmp_path)) == (
        f"{ARTIFACT}: not declared under artifacts: in dvc.yaml at 0123456"
    )


def test_a_commit_without_dvc_yaml_or_an_md5_in_dvc_lock_is_refused(monkeypatch, tmp_path):
    registered(monkeypatch, tmp_path, {("git", "show", f"{COMMIT}:dvc.yaml"): (128, "fatal: no dvc.yaml")})
    assert refused(lambda: fetch_model(f"{ARTIFACT}#prod", tmp_path, tmp_path)) == (
        f"{ARTIFACT} at 0123456: fatal: no dvc.yaml"
    )
    registered(monkeypatch, tmp_path, {("git", "show", f"{COMMIT}:dvc.lock"): (128, "fatal: no dvc.lock")})
    assert refused(lambda: fetch_model(f"{ARTIFACT}#prod", tmp_path, tmp_path)) == (
        "dvc.lock at 0123456: fatal: no dvc.lock"
    )
    registered(monkeypatch, tmp_path, {("git", "show", f"{COMMIT}:dvc.lock"): "stages: {}\n"})
    assert refused(lambda: fetch_model(f"{ARTIFACT}#prod", tmp_path, tmp_path)) == (
        "models/model.joblib: no md5 in dvc.lock at 0123456 (the pipeline was not run before tagging)"
    )


def test_tags_are_fetched_from_the_remote_when_there_is_one(monkeypatch, tmp_path, caplog):
    shell = Shell(monkeypatch, {("git", "remote", "get-url", "origin"): "https://example.invalid/r.git"}, tmp_path)
    fetch_tags(tmp_path)  # no tags could be fetched: a warning, not an error
    assert shell.calls[-1] == ["git", "fetch", "--quiet", "--tags", "--force", "origin"] and shell.timeouts[-1] == 120
    assert caplog.messages == [
        "could not fetch tags from origin, using the local ones: ERROR: unexpected command "
        "git fetch --quiet --tags --force origin"
    ]
    caplog.clear()
    shell = Shell(monkeypatch, {("git", "remote", "get-url", "mirror"): "u", ("git", "fetch"): (1, "")}, tmp_path)
    fetch_tags(tmp_path, remote="mirror")
    assert shell.calls[-1][-1] == "mirror" and caplog.messages[-1].endswith("using the local ones: ?")
    caplog.clear()
    shell = Shell(monkeypatch, {("git", "remote"): "u", ("git", "fetch"): ""}, tmp_path)
    fetch_tags(tmp_path)
    assert len(shell.calls) == 2 and not caplog.messages
    shell = Shell(monkeypatch, {}, tmp_path)
    fetch_tags(tmp_path)  # no remote at all: nothing fetched, nothing said
    assert len(shell.calls) == 1 and not caplog.messages


@pytest.mark.parametrize(
    "command, says",
    [
        (("gto", "show", "--json"), "gto show"),
        (("gto", "show", f"{ARTIFACT}#prod", "--ref"), f"{ARTIFACT}#prod"),
        (("git", "rev-parse", f"{ARTIFACT}@v1.0.0^{{commit}}"), f"{ARTIFACT}@v1.0.0"),
        (("gto", "show", ARTIFACT, "--json"), f"gto show {ARTIFACT}"),
    ],
)
def test_a_failing_command_while_resolving_is_named(monkeypatch, tmp_path, command, says):
    registered(monkeypatch, tmp_path, {command: (1, "ERROR: boom")})
    assert refused(lambda: fetch_model(f"{ARTIFACT}#prod", tmp_path, tmp_path)) == f"{says}: boom"
