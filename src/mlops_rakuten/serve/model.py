"""The model being served, swapped whole when a training run succeeds.

Several uvicorn workers may serve the same project. The worker that ran the
training reloads at once and writes a small "published" marker; every worker
looks at that marker at most once a second and reloads when it names a model
other than its own. A failed run never publishes, so the old model keeps
serving everywhere.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from sklearn.pipeline import Pipeline

from mlops_rakuten.atomic import atomic_open
from mlops_rakuten.errors import InputError
from mlops_rakuten.predict import load_model
from mlops_rakuten.serve.watch import FileWatch

log = logging.getLogger("serve.model")


@dataclass(frozen=True)
class LoadedModel:
    pipeline: Pipeline
    path: Path
    md5: str  # of the file's bytes: what dvc.lock records for it when the workspace matches
    loaded_at: str
    load_seconds: float


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


class ModelHolder:
    def __init__(self, path: Path, marker: Path, on_change: Callable[[LoadedModel | None, LoadedModel], None]):
        self.path = path
        self.marker = marker
        self.on_change = on_change
        self.loaded: LoadedModel | None = None
        self.error: str | None = None
        self._reloading = threading.Lock()
        self._marker = FileWatch(marker)

    def load(self) -> bool:
        """Load the file into memory; on failure keep what is served and remember why."""
        start = time.perf_counter()
        try:
            md5 = file_md5(self.path) if self.path.is_file() else ""
            pipeline = load_model(self.path)
        except InputError as exc:
            self.error = str(exc)
            log.warning("model not loaded: %s", exc)
            return False
        fresh = LoadedModel(pipeline, self.path, md5, datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            round(time.perf_counter() - start, 3))
        previous, self.loaded, self.error = self.loaded, fresh, None  # one assignment: readers see old or new
        self.on_change(previous, fresh)
        log.info("model %s loaded from %s in %.2fs", md5, self.path, fresh.load_seconds)
        return True

    def current(self) -> LoadedModel | None:
        """The served model, first picking up one another worker published (within a second)."""
        if self._marker.changed():
            self._follow_marker()
        return self.loaded

    def _follow_marker(self) -> None:
        # Only one request per worker reloads; the others keep answering with the old model meanwhile.
        if not self._reloading.acquire(blocking=False):
            return
        try:
            published = self.marker.read_text().strip() if self.marker.exists() else ""
            if published and (self.loaded is None or self.loaded.md5 != published):
                self.load()
        finally:
            self._reloading.release()

    def publish(self) -> None:
        """Tell the other workers to load the model this one just loaded."""
        if self.loaded is None:
            return
        with atomic_open(self.marker) as handle:
            handle.write(self.loaded.md5 + "\n")
        self._marker.mark_seen()
