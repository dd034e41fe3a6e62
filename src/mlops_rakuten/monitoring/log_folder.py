"""The prediction log's folder: private files, their names, and which of them may be deleted.

The log holds product text, so the folder is created 0700 and each file 0600 from its first byte
(os.open with the mode, then fchmod: whatever the umask). A folder or files left more open by an
older version are narrowed when a writer starts.

Replicas share the folder (the container stack's `predictions` volume), each writing its own files,
named ``predictions-<UTC start>-<host>-<pid>-<n>.jsonl``. A writer prunes at each rotation, and
must never delete a file another writer still appends to: a writer only appends to a file opened
less than its rotation age ago (it rotates before writing otherwise), so another writer's file is
deleted only once its start, read from its name, is older than that age plus a minute.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import stat
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("serve.prediction_log")

FILE_GLOB = "predictions-*.jsonl"
FOLDER_MODE = 0o700
FILE_MODE = 0o600
# Between a writer's rotation check and its write: far more than a write takes, even on a stalled disk.
GRACE_SECONDS = 60.0
_NAME = re.compile(r"^predictions-(\d{8}T\d{6})-(.+)-(\d+)\.jsonl$")


def writer_id() -> str:
    """This process among the replicas: host and pid (containers share the folder and may share a pid)."""
    return f"{socket.gethostname()}-{os.getpid()}"


def file_name(now: float, writer: str, serial: int) -> str:
    stamp = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"predictions-{stamp}-{writer}-{serial}.jsonl"


def private_folder(folder: Path) -> None:
    """Create ``folder`` 0700 (its parents as the umask says), or narrow it and its log files if older ones left them open."""
    folder.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    _narrow(folder, FOLDER_MODE)
    for path in folder.glob(FILE_GLOB):
        _narrow(path, FILE_MODE)


def _narrow(path: Path, mode: int) -> None:
    try:
        if stat.S_IMODE(path.stat().st_mode) != mode:
            os.chmod(path, mode)
    except OSError as exc:  # another user's file: readable by whoever its owner allowed
        log.warning("prediction log: cannot make %s private (mode %o): %s", path, mode, exc)


def open_private(path: Path) -> BinaryIO:
    """``path`` opened for appending, created 0600 if new (umask-proof)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # the umask may have taken bits from the owner's too
        return os.fdopen(fd, "ab")
    except BaseException:
        os.close(fd)
        raise


@dataclass(frozen=True)
class _File:
    path: Path
    mtime: float
    size: int
    started: float  # when its writer opened it (its name), or its mtime for a name of another form
    writer: str


def _files(folder: Path) -> list[_File]:
    files = []
    for path in folder.glob(FILE_GLOB):
        try:
            info = path.stat()
        except OSError:
            continue  # deleted meanwhile
        match = _NAME.match(path.name)
        started, writer = info.st_mtime, ""
        if match:
            started = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc).timestamp()
            writer = match.group(2)
        files.append(_File(path, info.st_mtime, info.st_size, started, writer))
    return sorted(files, key=lambda f: (f.mtime, f.path.name))


def prune(
    folder: Path,
    retention_seconds: float,
    max_total_bytes: int,
    rotate_seconds: float,
    own_writer: str,
    open_file: Path | None,
    now: float | None = None,
) -> list[Path]:
    """Delete files past the retention age, then the oldest until the total fits; the deleted files.

    Never ``open_file`` (this writer's), nor another writer's file it may still append to.
    """
    now = time.time() if now is None else now
    files = _files(folder)
    total = sum(f.size for f in files)
    deleted = []
    for f in files:
        if now - f.mtime <= retention_seconds and total <= max_total_bytes:
            break
        if f.path == open_file:
            continue
        if f.writer != own_writer and now - f.started <= rotate_seconds + GRACE_SECONDS:
            continue  # its writer may still append to it: it deletes it itself after rotating
        f.path.unlink(missing_ok=True)
        total -= f.size
        deleted.append(f.path)
        log.info("prediction log %s deleted (retention)", f.path.name)
    return deleted
