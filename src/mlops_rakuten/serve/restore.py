"""Put back a model file that `dvc.lock` records but the workspace lost, from the DVC cache.

DVC deletes a stage's outputs before running it: a command-line `dvc repro`
that crashed in ``train`` leaves no ``models/model.joblib``, although dvc.lock
still records the last good one and the cache still holds its bytes. The
server restores it at start-up, after checking the bytes against dvc.lock's md5,
rather than answering 503 until someone runs `dvc checkout`.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from mlops_rakuten.core.atomic import atomic_path
from mlops_rakuten.ops.commands import run
from mlops_rakuten.ops.dvcfiles import file_md5
from mlops_rakuten.serve.project import Busy, locked_model_md5, project_lock
from mlops_rakuten.serve.settings import MODEL_PATH

log = logging.getLogger("serve.restore")


def cache_dir(root: Path) -> Path:
    """Where this project's DVC cache is (`dvc cache dir`: .dvc/cache unless configured elsewhere)."""
    try:
        result = run(["dvc", "cache", "dir"], root, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return root / ".dvc" / "cache"
    if result.returncode == 0 and result.stdout.strip():
        return Path(result.stdout.strip())
    return root / ".dvc" / "cache"


def cached_file(cache: Path, md5: str) -> Path:
    """A file's place in a DVC 3 cache: files/md5/<first 2 hex digits>/<the other 30>."""
    return cache / "files" / "md5" / md5[:2] / md5[2:]


def restore_model(root: Path, state_dir: Path, out: str = MODEL_PATH) -> str:
    """Restore ``out`` from the cache when it is missing; a sentence saying what happened (logged too)."""
    target = root / out
    if target.exists():
        return f"{out} is there"
    md5 = locked_model_md5(root, out=out)
    if not md5:
        return f"{out} is missing and dvc.lock records none: nothing to restore (run `dvc repro`)"
    try:
        with project_lock(state_dir):  # a training run under way writes the file itself
            source = cached_file(cache_dir(root), md5)
            if not source.is_file():
                message = f"{out} is missing and the DVC cache lacks dvc.lock's {md5} (try `dvc pull {out}`)"
                log.warning(message)
                return message
            with atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)
                found = file_md5(tmp)
                if found != md5:  # a damaged cache entry is never served
                    message = f"{out} not restored: the cached copy's md5 is {found}, dvc.lock says {md5}"
                    log.error(message)
                    raise _Refused(message)
    except Busy:
        return f"{out} is missing while a training run or an ingest holds the project: it will write the model"
    except _Refused as refused:
        return str(refused)
    except OSError as exc:  # a read-only project (a predict replica): the writer restores it
        message = f"{out} is missing and could not be restored: {exc}"
        log.warning(message)
        return message
    message = f"restored {out} ({md5}, as dvc.lock records it) from the DVC cache"
    log.warning(message)
    return message


class _Refused(Exception):
    pass
