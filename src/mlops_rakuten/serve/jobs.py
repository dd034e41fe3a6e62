"""Training runs: the real ``dvc repro`` in a background thread, one at a time, recorded as JSON files.

Job records live in files (not memory) so any uvicorn worker can answer
GET /train/{id}, and a record outlives a restart. The project lock is held
for the whole run, so a second run or an ingest gets 409 meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

from mlops_rakuten.atomic import atomic_open
from mlops_rakuten.serve.model import ModelHolder
from mlops_rakuten.serve.project import data_version, is_locked, project_lock, read_metrics
from mlops_rakuten.serve.settings import MODEL_PATH, Settings
from mlops_rakuten.workspace import run

log = logging.getLogger("serve.train")
_JOB_ID = re.compile(r"^[0-9a-f]{16}$")
LOG_LINES = 30  # the end of dvc's output, enough to see which stage failed and why


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _tail(*texts: str) -> list[str]:
    return "\n".join(t.strip() for t in texts if t.strip()).splitlines()[-LOG_LINES:]


class TrainJobs:
    def __init__(self, settings: Settings, holder: ModelHolder, on_finish: Callable[[str], None]):
        self.root = settings.project_dir
        self.state_dir = settings.state_dir
        self.jobs_dir = settings.state_dir / "jobs"
        self.holder = holder
        self.on_finish = on_finish  # told "succeeded" or "failed", for the metrics

    def _save(self, job: dict[str, Any]) -> None:
        with atomic_open(self.jobs_dir / f"{job['id']}.json") as handle:
            json.dump(job, handle, indent=2)

    def start(self) -> dict[str, Any]:
        """Start a run and return its record; Busy if the project is already being changed."""
        hold = contextlib.ExitStack()
        hold.enter_context(project_lock(self.state_dir))  # raises Busy before anything is recorded
        job = {"id": uuid.uuid4().hex[:16], "status": "running", "started_at": _now(), "finished_at": None,
               "data": data_version(self.root), "model_md5": None, "metrics": None, "log": []}
        try:
            self._save(job)
            threading.Thread(target=self._run, args=(job, hold), name=f"train-{job['id']}", daemon=True).start()
        except BaseException:
            hold.close()
            raise
        return job

    def _run(self, job: dict[str, Any], hold: contextlib.ExitStack) -> None:
        with hold:  # the lock is released only after the final record is written
            try:
                ok, lines = self._repro_and_reload()
            except Exception as exc:  # the record must say why, whatever happened
                log.exception("training run %s crashed", job["id"])
                ok, lines = False, [f"{type(exc).__name__}: {exc}"]
            loaded = self.holder.loaded
            job.update(status="succeeded" if ok else "failed", finished_at=_now(), log=lines,
                       model_md5=loaded.md5 if loaded else None, metrics=read_metrics(self.root) if ok else None)
            self._save(job)
            if ok:
                self.holder.publish()
        self.on_finish(job["status"])
        log.info("training run %s %s", job["id"], job["status"])

    def _repro_and_reload(self) -> tuple[bool, list[str]]:
        result = run(["dvc", "repro"], self.root, check=False)
        lines = _tail(result.stdout, result.stderr)
        if result.returncode != 0:
            # dvc deletes a stage's outputs before running it: put the last good model back on disk
            # too, so a restart serves the same model as the running workers.
            run(["dvc", "checkout", MODEL_PATH], self.root, check=False)
            return False, lines
        if not self.holder.load():
            return False, [*lines, f"new model not loaded: {self.holder.error}"]
        return True, lines

    def get(self, job_id: str) -> dict[str, Any] | None:
        path = self.jobs_dir / f"{job_id}.json"
        if not _JOB_ID.match(job_id) or not path.is_file():
            return None
        job = json.loads(path.read_text(encoding="utf-8"))
        if job["status"] == "running" and not is_locked(self.state_dir):
            job = json.loads(path.read_text(encoding="utf-8"))  # it may have finished since the first read
            if job["status"] == "running":
                # Nobody holds the project, yet the run never finished: its server was stopped mid-run.
                job.update(status="failed", log=[*job["log"], "interrupted: the server stopped during the run"])
        return job
