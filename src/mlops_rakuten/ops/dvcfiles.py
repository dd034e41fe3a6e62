"""The one reader of the hashes DVC records: dvc.lock's outputs, ``.dvc`` pointers, and files' md5s.

Every reader tolerates a file being absent or mid-rewrite (None or empty), so a server can report
what it can while a training run rewrites dvc.lock.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml


def file_md5(path: Path) -> str:
    """The md5 of a file's bytes, as DVC computes it for a file output."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_yaml(text: str) -> Any:
    """YAML text as data; None if it does not parse."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def read_yaml(path: Path) -> Any:
    """A YAML file as data; None if it is absent or does not parse."""
    try:
        return parse_yaml(path.read_text(encoding="utf-8"))
    except OSError:
        return None


def _locked(lock: Any, path: str, kind: str) -> str | None:
    """The md5 a parsed dvc.lock records for ``path`` among its stages' ``kind`` (outs or deps)."""
    stages = (lock or {}).get("stages") if isinstance(lock, dict) else None
    for stage in (stages or {}).values():
        for entry in (stage or {}).get(kind) or []:
            if isinstance(entry, dict) and entry.get("path") == path and entry.get("md5"):
                return entry["md5"]
    return None


def locked_md5(lock: Any, path: str) -> str | None:
    """The md5 a parsed dvc.lock records for the output ``path`` (of whichever stage writes it)."""
    return _locked(lock, path, "outs")


def pointer_out(pointer: Any) -> dict[str, Any]:
    """The output a parsed ``.dvc`` pointer tracks (md5, size, nfiles ...); empty if there is none."""
    outs = (pointer or {}).get("outs") if isinstance(pointer, dict) else None
    return outs[0] if outs and isinstance(outs[0], dict) else {}


def locked_dep_md5(lock: Any, path: str) -> str | None:
    """The md5 a parsed dvc.lock records for ``path`` as a stage's dependency (the first stage reading it)."""
    return _locked(lock, path, "deps")
