"""requirements.lock with hashes: written by `make lock`, read by `make setup`, the API image and tests.

The lock pins every package at one version with the sha256 of each of that version's files on PyPI
(every wheel and the sdist, so any platform and supported Python finds its file), and pip installs it
with ``--require-hashes``: a file that differs from what was locked is refused, whichever index or
mirror served it.

pip refuses hashes in a constraints file, so installing part of the lock (the API image needs the
serve extra, not the docs or test tools) is `install`: pip resolves the wanted requirements against
the lock's versions (a dry run), then installs exactly what it resolved with the lock's hashes:

    python locked_requirements.py install requirements.lock -r wanted.txt setuptools

Standard library only: the image runs it before anything is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

HEADER = (
    "# Exact versions of every dependency, with the sha256 of each of their files on PyPI.\n"
    "# make setup installs them with --require-hashes. Regenerate: make lock\n"
)
INDEX = "https://pypi.org/simple/{}/"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
ARCHIVES = (".whl", ".tar.gz", ".zip")


def canonical(name: str) -> str:
    """PEP 503's normalised project name: the key the lock, pip's report and the index agree on."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str) -> dict[str, tuple[str, str, list[str]]]:
    """canonical name -> (name as written, version, hashes), from a lock with or without hashes."""
    pins: dict[str, tuple[str, str, list[str]]] = {}
    for number, line in enumerate(text.replace("\\\n", " ").splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        name, sep, version = words[0].partition("==")
        if not sep or not version:
            raise SystemExit(f"requirements.lock, requirement {number}: expected NAME==VERSION, got {words[0]!r}")
        hashes = [word.removeprefix("--hash=sha256:") for word in words[1:] if word.startswith("--hash=sha256:")]
        pins[canonical(name)] = (name, version, hashes)
    return pins


def format_lock(pins: dict[str, tuple[str, str, list[str]]], header: str = HEADER) -> str:
    lines = [header.rstrip("\n")]
    for key in sorted(pins):
        name, version, hashes = pins[key]
        lines.append(" \\\n    ".join([f"{name}=={version}", *(f"--hash=sha256:{h}" for h in sorted(hashes))]))
    return "\n".join(lines) + "\n"


def file_version(filename: str) -> str | None:
    """The version in a wheel's or sdist's file name; None for other kinds (eggs, installers)."""
    if filename.endswith(".whl"):
        return filename.split("-")[1]
    for ending in (".tar.gz", ".zip"):
        if filename.endswith(ending):
            return filename[: -len(ending)].rpartition("-")[2]
    return None


def version_hashes(files: list[dict], version: str) -> list[str]:
    """The sha256 of every wheel and sdist of one release, from PyPI's simple JSON file list."""
    return sorted(
        entry["hashes"]["sha256"]
        for entry in files
        if file_version(entry["filename"]) == version and "sha256" in entry.get("hashes", {})
    )


def fetch_files(name: str) -> list[dict]:
    request = urllib.request.Request(INDEX.format(canonical(name)), headers={"Accept": SIMPLE_JSON})
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 (a fixed https URL)
        return json.load(answer)["files"]


def write_atomic(path: Path, text: str) -> None:
    # Standard library only (see the module docstring), so not core/atomic.py: same temp-then-rename.
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as out:
        out.write(text)
    os.replace(temp, path)


def hash_pins(frozen: Path, target: Path) -> None:
    """`pip freeze` output -> the hashed lock; a release with no file on PyPI is an error naming it."""
    pins = parse_lock(frozen.read_text())
    missing = []
    for number, key in enumerate(sorted(pins), 1):
        name, version, _ = pins[key]
        hashes = version_hashes(fetch_files(name), version)
        print(f"[{number}/{len(pins)}] {name}=={version}: {len(hashes)} files", file=sys.stderr)
        if not hashes:
            missing.append(f"{name}=={version}")
        pins[key] = (name, version, hashes)
    if missing:
        raise SystemExit(f"no wheel or sdist on PyPI for: {', '.join(missing)}")
    write_atomic(target, format_lock(pins))


def select(pins: dict[str, tuple[str, str, list[str]]], report: dict) -> dict[str, tuple[str, str, list[str]]]:
    """The lock's pins (hashes included) for exactly the packages a pip --report resolved."""
    chosen = {}
    for item in report["install"]:
        key, version = canonical(item["metadata"]["name"]), item["metadata"]["version"]
        if key not in pins or pins[key][1] != version:
            locked = f"{pins[key][0]}=={pins[key][1]}" if key in pins else "nothing"
            raise SystemExit(f"pip resolved {key}=={version}, requirements.lock pins {locked}")
        chosen[key] = pins[key]
    return chosen


def install(lock: Path, wanted: list[str]) -> None:
    """Install `wanted` (pip arguments: names, -r FILE) into this Python at the lock's versions and hashes."""
    pins = parse_lock(lock.read_text())
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "constraints.txt").write_text("".join(f"{n}=={v}\n" for n, v, _ in pins.values()))
        report = folder / "report.json"
        resolve = ["--dry-run", "--ignore-installed", "--report", str(report), "-c", str(folder / "constraints.txt")]
        subprocess.run([*pip, *resolve, *wanted], check=True)
        chosen = select(pins, json.loads(report.read_text()))
        (folder / "pinned.txt").write_text(format_lock(chosen, header="# part of requirements.lock\n"))
        subprocess.run([*pip, "--require-hashes", "--no-deps", "-r", str(folder / "pinned.txt")], check=True)
    print(f"installed {len(chosen)} of the {len(pins)} locked packages, hashes checked", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    hashing = commands.add_parser("hash", help="pip freeze output -> requirements.lock with hashes")
    hashing.add_argument("frozen", type=Path)
    hashing.add_argument("target", type=Path)
    part = commands.add_parser("install", help="install part of the lock, hashes checked")
    part.add_argument("lock", type=Path)
    part.add_argument("wanted", nargs=argparse.REMAINDER, help="what to install, as pip takes it (names, -r FILE)")
    args = parser.parse_args(argv)
    if args.command == "hash":
        hash_pins(args.frozen, args.target)
    else:
        install(args.lock, args.wanted)


if __name__ == "__main__":
    main()
