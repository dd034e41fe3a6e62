"""Make ``data/raw`` match ``data/raw.dvc``: pull it from the remote, or rebuild the demo set.

A fresh clone has only the ``.dvc`` pointer. If a DVC remote is configured
and reachable, ``dvc pull`` brings the data and every cached output. If not,
and the pointer still names the built-in demo set, the demo set is generated
again and must hash to exactly what the pointer records.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from mlops_rakuten.core.demo_data import write_demo_data
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.paths import X_FILE, Y_FILE
from mlops_rakuten.ops.commands import run
from mlops_rakuten.ops.dvcfiles import pointer_out, read_yaml
from mlops_rakuten.ops.remote import default_remote, reachable

log = logging.getLogger("raw-data")

DEMO_ROWS = 20000
DEMO_SEED = 42


def _dvc(*args: str) -> subprocess.CompletedProcess:
    return run(["dvc", *args], None, check=False)


def _recorded_md5(dvc_file: Path) -> str | None:
    return pointer_out(read_yaml(dvc_file)).get("md5")


def add_if_matches(raw_dir: Path, dvc_file: Path) -> bool:
    """``dvc add`` the data (hash + cache it); keep the pointer and return True only if the hash is unchanged."""
    recorded, recorded_md5 = dvc_file.read_text(encoding="utf-8"), _recorded_md5(dvc_file)
    result = _dvc("add", "--quiet", str(raw_dir))
    if result.returncode != 0:
        raise InputError(f"{raw_dir}: dvc add failed: {result.stderr.strip()}")
    if _recorded_md5(dvc_file) == recorded_md5:
        return True
    dvc_file.write_text(recorded, encoding="utf-8")
    return False


def try_pull() -> bool:
    """``dvc pull`` from the default remote; False (with the reason logged) when there is none or it fails.

    The remote's host is tried first with a short connect timeout: offline, dvc pull would spend its
    retries (~47 s for DagsHub) before failing.
    """
    remote = default_remote()
    if remote is None:
        log.info("no DVC remote configured: skipping dvc pull")
        return False
    if remote.address is not None and not reachable(remote.address):
        log.warning("cannot reach %s: using the demo data", remote.endpoint)
        return False
    log.info("pulling data and outputs from the DVC remote '%s' (%s) ...", remote.name, remote.endpoint)
    result = _dvc("pull")
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        log.warning("dvc pull failed (%s); falling back to the demo data", reason)
        return False
    return True


def _present(raw_dir: Path) -> bool:
    return raw_dir.is_dir() and any(raw_dir.iterdir())


def _matches_pointer(dvc_file: Path) -> bool:
    """Whether the workspace data is the version ``dvc_file`` records (local check, no network)."""
    result = _dvc("status", "--json", str(dvc_file))
    return result.returncode == 0 and result.stdout.strip() in ("", "{}")


def check_out_recorded(raw_dir: Path, dvc_file: Path) -> bool:
    """Replace data that differs from the pointer (e.g. after a `git pull`), never losing files.

    `dvc checkout` without --force only removes files the DVC cache holds; True when the recorded
    version is now in place, False when the old (cached) version is gone and must be fetched.
    """
    log.info("%s differs from %s: checking out the recorded version", raw_dir, dvc_file)
    result = _dvc("checkout", str(dvc_file))
    if result.returncode == 0:
        log.info("%s restored from the DVC cache", raw_dir)
        return True
    if _present(raw_dir):
        raise InputError(
            f"{raw_dir} differs from {dvc_file} and holds files that are in no DVC cache: "
            f"run `dvc add {raw_dir}` to record them as the new version, or "
            f"`dvc checkout --force {dvc_file}` to discard them"
        )
    return False


def ensure_raw_data(raw_dir: Path, dvc_file: Path) -> None:
    if _present(raw_dir):
        if _matches_pointer(dvc_file):
            log.info("%s is present and matches %s: nothing to fetch", raw_dir, dvc_file)
            return
        if check_out_recorded(raw_dir, dvc_file):
            return
    if try_pull() and raw_dir.is_dir():
        log.info("%s pulled from the remote", raw_dir)
        return
    log.info("generating the demo data set (%d rows, seed %d) into %s", DEMO_ROWS, DEMO_SEED, raw_dir)
    write_demo_data(raw_dir, DEMO_ROWS, DEMO_SEED)
    if not add_if_matches(raw_dir, dvc_file):
        shutil.rmtree(raw_dir)
        raise InputError(
            f"{dvc_file} tracks data other than the built-in demo set and no remote provided it: "
            f"run `dvc pull` from your team's remote, or copy {X_FILE} and {Y_FILE} into {raw_dir}"
        )
    log.info("%s regenerated and matches %s", raw_dir, dvc_file)
