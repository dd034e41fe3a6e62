"""Training runs: the real ``dvc repro`` in a child process, one at a time, recorded as JSON files.

Job records live in files (not memory) so any uvicorn worker can answer
GET /train/{id}, and a record outlives a restart. The project lock is held
for the whole run, so a second run or an ingest gets 409 meanwhile.

The child gets the lock's file descriptor and writes its exit status to a
file when it ends. A server killed mid-run therefore leaves a run that still
holds the project (a restarted server answers 409 and follows it to its end),
or, if the child died too, a record the restart marks "interrupted".

A model is served only once its whole run succeeded. `dvc repro` records each
stage in dvc.lock as it ends, so a run that dies in `evaluate` leaves a lock
naming a model that was never evaluated, and no metrics or plots. So before a
run, dvc.lock and the outputs DVC does not cache (metrics, plots) are copied
beside the job's record; a run that fails or is interrupted puts them back and
checks the cached outputs out of the DVC cache: the last good model again, with
its metrics and plots.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from mlops_rakuten.core.atomic import atomic_open, atomic_path
from mlops_rakuten.ops.commands import run
from mlops_rakuten.serve.model import ModelHolder
from mlops_rakuten.serve.project import Busy, data_version, is_locked, project_lock, read_metrics, uncached_outputs
from mlops_rakuten.serve.settings import DVC_LOCK, Settings

log = logging.getLogger("serve.train")
_JOB_ID = re.compile(r"^[0-9a-f]{16}$")
LOG_LINES = 30  # the end of dvc's output, enough to see which stage failed and why
# sh runs dvc and then records its exit status, even when the server that started it is gone.
_REPRO = 'dvc repro; echo $? > "$1.tmp" && mv "$1.tmp" "$1"'
KEPT = ".complete"  # written last into a job's copy of the last good run
INTERRUPTED = "interrupted: the server stopped during the run and dvc repro did not finish"


def _fsync_tree(folder: Path) -> None:
    for path in [*folder.rglob("*"), folder]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _tail(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.strip().splitlines() if line.strip()][-LOG_LINES:]


def _exit_status(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None  # the run did not finish: it was killed with (or before) its server


class TrainJobs:
    command = _REPRO  # run by sh with the exit-status file as $1; a subclass runs another command the same way

    def __init__(self, settings: Settings, holder: ModelHolder, on_finish: Callable[[str], None]):
        self.root = settings.project_dir
        self.state_dir = settings.state_dir
        self.jobs_dir = settings.state_dir / "jobs"
        self.holder = holder
        self.on_finish = on_finish  # told "succeeded", "failed" or "interrupted", for the metrics

    def _save(self, job: dict[str, Any]) -> None:
        with atomic_open(self.jobs_dir / f"{job['id']}.json") as handle:
            json.dump(job, handle, indent=2)

    def _files(self, job_id: str) -> tuple[Path, Path]:
        return self.jobs_dir / f"{job_id}.log", self.jobs_dir / f"{job_id}.exit"

    def _before(self, job_id: str) -> Path:
        """The folder keeping dvc.lock and the uncached outputs as they were before the run."""
        return self.jobs_dir / f"{job_id}.before"

    def unfinished(self) -> bool:
        """A run a stopped server left "running": its outputs may be half made (serve the last good model)."""
        return any(job.get("status") == "running" for job in self._records())

    def _keep_last_good(self, job_id: str) -> None:
        before = self._before(job_id)
        shutil.rmtree(before, ignore_errors=True)
        before.mkdir(parents=True)
        for name in [DVC_LOCK, *uncached_outputs(self.root)]:
            source = self.root / name
            if source.is_file():
                (before / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, before / name)
        _fsync_tree(before)
        (before / KEPT).touch()  # complete: from here on a restore puts back exactly these files

    def _restore_last_good(self, job_id: str) -> None:
        """dvc.lock and the uncached outputs as before the run; the cached ones (the model) from the DVC cache."""
        before = self._before(job_id)
        if (before / KEPT).is_file():
            for path in sorted(before.rglob("*")):
                if path.is_file() and path.name != KEPT:
                    with atomic_path(self.root / path.relative_to(before)) as tmp:
                        shutil.copyfile(path, tmp)
        restored = run(["dvc", "checkout", "-q"], self.root, check=False)
        if restored.returncode != 0:
            log.error(
                "could not put the last good outputs back after run %s: %s", job_id, restored.stderr.strip()[-500:]
            )

    def start(self) -> dict[str, Any]:
        """Start a run and return its record; Busy if the project is already being changed."""
        hold = contextlib.ExitStack()
        lock_fd = hold.enter_context(project_lock(self.state_dir))  # raises Busy before anything is recorded
        job: dict[str, Any] = {
            "id": uuid.uuid4().hex[:16],
            "status": "running",
            "started_at": _now(),
            "finished_at": None,
            "data": data_version(self.root),
            "model_md5": None,
            "metrics": None,
            "log": [],
            "pid": None,
        }
        try:
            self._keep_last_good(job["id"])
            self._save(job)
            process = self._spawn(job, lock_fd)
            threading.Thread(
                target=self._run, args=(job, hold, process), name=f"train-{job['id']}", daemon=True
            ).start()
        except BaseException:
            hold.close()
            raise
        return job

    def _spawn(self, job: dict[str, Any], lock_fd: int) -> subprocess.Popen:
        log_path, exit_path = self._files(job["id"])
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        with open(log_path, "wb") as output:
            process = subprocess.Popen(
                ["sh", "-c", self.command, "sh", str(exit_path)],
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                pass_fds=(lock_fd,),
            )
        job["pid"] = process.pid
        self._save(job)
        return process

    def _run(self, job: dict[str, Any], hold: contextlib.ExitStack, process: subprocess.Popen) -> None:
        with hold:  # the lock is released only after the final record is written
            try:
                process.wait()
                self._settle(job)
            except Exception as exc:  # the record must say why, whatever happened
                log.exception("training run %s crashed", job["id"])
                job.update(status="failed", finished_at=_now(), log=[f"{type(exc).__name__}: {exc}"])
                self._save(job)

    def _settle(self, job: dict[str, Any], after_restart: bool = False) -> None:
        """Record how a finished (or dead) run ended and serve its model, or the last good one again."""
        log_path, exit_path = self._files(job["id"])
        status, lines = _exit_status(exit_path), _tail(log_path)
        ok = status == 0
        if ok and not self.holder.load():
            ok, lines = False, [*lines, f"new model not loaded: {self.holder.error}"]
        if not ok:
            # The stages that did end are in dvc.lock, the others' outputs deleted: put the last good run
            # back on disk, so a restart serves the same model as the running workers, with its metrics.
            self._restore_last_good(job["id"])
            if after_restart:
                self.holder.load()
        if status is None:
            lines = [*lines, INTERRUPTED]
        elif after_restart:
            lines = [*lines, "finished while the server was restarting"]
        loaded = self.holder.loaded
        job.update(
            status="succeeded" if ok else "interrupted" if status is None else "failed",
            finished_at=job.get("finished_at") or _now(),
            log=lines,
            model_md5=loaded.md5 if loaded else None,
            metrics=read_metrics(self.root) if ok else None,
        )
        self._save(job)
        shutil.rmtree(self._before(job["id"]), ignore_errors=True)  # settled: nothing left to restore
        if ok or after_restart:
            self.holder.publish()
        self.on_finish(job["status"])
        log.info("training run %s %s", job["id"], job["status"])

    def _records(self) -> list[dict[str, Any]]:
        records = []
        for path in self.jobs_dir.glob("*.json") if self.jobs_dir.is_dir() else []:
            try:
                records.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
        return sorted(records, key=lambda job: job.get("started_at") or "")

    def recover(self) -> None:
        """At start-up: settle runs a stopped server left "running", now or (if one still runs) when it ends."""
        if not self.unfinished():
            return
        try:
            with project_lock(self.state_dir):
                self._settle_unfinished()
        except Busy:  # a run outlived its server: follow it, the project stays locked (409) meanwhile
            threading.Thread(target=self._wait_then_settle, name="train-follow", daemon=True).start()

    def _wait_then_settle(self) -> None:
        try:
            with project_lock(self.state_dir, wait=True):
                self._settle_unfinished()
        except Exception:
            log.exception("could not settle the training run a stopped server left")

    def _settle_unfinished(self) -> None:
        for job in self._records():
            if job.get("status") == "running":
                self._settle(job, after_restart=True)

    def latest(self) -> dict[str, Any] | None:
        """The last run's id, status and times (for /info), or None before the first."""
        records = self._records()
        if not records:
            return None
        job = self.get(records[-1]["id"]) or records[-1]
        return {key: job.get(key) for key in ("id", "status", "started_at", "finished_at")}

    def get(self, job_id: str) -> dict[str, Any] | None:
        path = self.jobs_dir / f"{job_id}.json"
        if not _JOB_ID.match(job_id) or not path.is_file():
            return None
        job = json.loads(path.read_text(encoding="utf-8"))
        if job["status"] == "running" and not is_locked(self.state_dir):
            job = json.loads(path.read_text(encoding="utf-8"))  # it may have finished since the first read
            if job["status"] == "running":
                # Nobody holds the project, yet the run was never settled: its server stopped mid-run.
                job.update(status="interrupted", log=[*job["log"], INTERRUPTED])
        job.pop("pid", None)
        return job
