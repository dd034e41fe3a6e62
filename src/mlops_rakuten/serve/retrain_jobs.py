"""POST /retrain's runs: the gated `rakuten retrain` in a child process, recorded and locked like /train's.

Same records, lock and restart handling as training runs (jobs.py), in their own folder; the record also
gets ``outcome`` (registered, refused, not_registered, no_new_data, failed, interrupted) and ``report``,
the path of the comparison report in the project.
"""

from __future__ import annotations

import re
from typing import Any

from mlops_rakuten.serve.jobs import TrainJobs, _exit_status
from mlops_rakuten.serve.model import ModelHolder
from mlops_rakuten.serve.settings import Settings

_RETRAIN = 'rakuten retrain --reports reports; echo $? > "$1.tmp" && mv "$1.tmp" "$1"'
OUTCOMES = {0: "registered", 3: "refused", 4: "not_registered", 5: "no_new_data"}
_REPORT = re.compile(r"^report: (\S+)$")


class RetrainJobs(TrainJobs):
    command = _RETRAIN

    def __init__(self, settings: Settings, holder: ModelHolder):
        super().__init__(settings, holder, on_finish=lambda status: None)
        self.jobs_dir = settings.state_dir / "retrain-jobs"

    def _settle(self, job: dict[str, Any], after_restart: bool = False) -> None:
        # A registered candidate was committed into the workspace: the base class loads it, as /train does.
        status = _exit_status(self._files(job["id"])[1])
        super()._settle(job, after_restart)
        job["outcome"] = "interrupted" if status is None else OUTCOMES.get(status, "failed")
        job["report"] = next((m.group(1) for line in job["log"] if (m := _REPORT.match(line))), None)
        self._save(job)
