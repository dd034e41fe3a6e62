"""The model being served, swapped whole when a training run succeeds.

Several uvicorn workers may serve the same project. The worker that ran the
training reloads at once and writes a small "published" marker; every worker
looks at that marker at most once a second and reloads when it names a model
other than its own. A failed run never publishes, so the old model keeps
serving everywhere. A predict replica with its own state folder also watches
the writer's marker, and publishes (after its own /reload) only into its own
folder: the writer's is not its to write (the container stack mounts it read-only).

Each model loaded is also copied into the state folder ("last good"). DVC
deletes a stage's outputs before running it, so after a crash mid-training
the workspace may have no model: a restarted server then serves that copy
until the model file is back.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from sklearn.pipeline import Pipeline

from mlops_rakuten.core.atomic import atomic_open, atomic_path
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.predict import load_model
from mlops_rakuten.ops.dvcfiles import file_md5
from mlops_rakuten.serve.watch import FileWatch

log = logging.getLogger("serve.model")


@dataclass(frozen=True)
class LoadedModel:
    pipeline: Pipeline
    path: Path
    md5: str  # of the file's bytes: what dvc.lock records for it when the workspace matches
    loaded_at: str
    load_seconds: float
    version: str = ""  # the registry version, when one is served
    since: str = ""  # when the server (all its workers) began serving that version


class ModelHolder:
    def __init__(
        self,
        path: Path,
        marker: Path,
        on_change: Callable[[LoadedModel | None, LoadedModel], None],
        last_good: Path | None = None,
        watched: tuple[Path, ...] = (),
    ):
        self.path = path
        self.marker = marker  # this server's: publish() writes it
        self.last_good = last_good or marker.with_name("last-good-model.joblib")
        self.on_change = on_change
        self.loaded: LoadedModel | None = None
        self.version = self.since = ""  # of the registry model at ``path`` (serve/follow.py), else empty
        self.error: str | None = None
        self._reloading = threading.Lock()
        self._markers = [FileWatch(path) for path in (marker, *watched)]  # another server's too, read only

    def load(self) -> bool:
        """Load the file into memory; on failure keep what is served and remember why.

        With nothing served yet (a start-up), a model file that cannot be loaded
        falls back to the last good copy: False all the same, with the reason in ``error``.
        """
        try:
            fresh = self._read(self.path)
        except InputError as exc:
            log.warning("model not loaded: %s", exc)
            if self.loaded is None and self.last_good.is_file():
                with contextlib.suppress(InputError):
                    last_good = self._read(self.last_good)
                    self._serve(last_good)
                    log.warning("serving the last good model %s until %s is back", last_good.md5, self.path)
            self.error = str(exc)
            return False
        self._serve(fresh)
        self._keep_copy(fresh)
        return True

    def load_last_good(self) -> bool:
        """Serve the copy of the last model loaded (while a run that may have replaced the file is unsettled)."""
        try:
            self._serve(self._read(self.last_good))
        except InputError as exc:
            log.warning("no last good model to serve (%s): loading %s", exc, self.path)
            return self.load()
        md5 = self.loaded.md5 if self.loaded else None
        log.warning("serving the last good model %s until the unfinished training run is settled", md5)
        return True

    def _read(self, path: Path) -> LoadedModel:
        start = time.perf_counter()
        md5 = file_md5(path) if path.is_file() else ""
        pipeline = load_model(path)
        return LoadedModel(
            pipeline,
            path,
            md5,
            datetime.now(timezone.utc).isoformat(timespec="seconds"),
            round(time.perf_counter() - start, 3),
            self.version,
            self.since,
        )

    def switch(self, path: Path, version: str, since: str, expected_md5: str) -> bool:
        """Serve another file (a registry version) from now on, if it loads and has the expected md5.

        Called off the request path (serve/follow.py's thread): requests go on with the old model
        until the one assignment in ``_serve``.
        """
        with self._reloading:
            previous = self.path, self.version, self.since
            self.path, self.version, self.since = path, version, since
            try:
                fresh = self._read(path)
                if fresh.md5 != expected_md5:
                    raise InputError(f"{path}: md5 {fresh.md5}, expected {expected_md5}")
            except InputError as exc:
                self.path, self.version, self.since = previous
                self.error = str(exc)
                log.error("kept serving %s: %s", self.loaded.md5 if self.loaded else "nothing", exc)
                return False
            self._serve(fresh)
            return True

    def _serve(self, fresh: LoadedModel) -> None:
        previous, self.loaded, self.error = self.loaded, fresh, None  # one assignment: readers see old or new
        self.on_change(previous, fresh)
        log.info("model %s loaded from %s in %.2fs", fresh.md5, fresh.path, fresh.load_seconds)

    def _keep_copy(self, model: LoadedModel) -> None:
        try:
            if self.last_good.is_file() and file_md5(self.last_good) == model.md5:
                return
            with atomic_path(self.last_good) as tmp:
                shutil.copyfile(model.path, tmp)
        except OSError as exc:  # serving goes on; only the crash fallback is missing
            log.warning("could not keep a copy of the model in %s: %s", self.last_good, exc)

    def current(self) -> LoadedModel | None:
        """The served model, first picking up one another worker published (within a second)."""
        changed = [watch.path for watch in self._markers if watch.changed()]  # each looked at: none skipped
        if changed:
            self._follow_markers(changed)
        return self.loaded

    def _follow_markers(self, markers: list[Path]) -> None:
        # Only one request per worker reloads; the others keep answering with the old model meanwhile.
        if not self._reloading.acquire(blocking=False):
            return
        try:
            for marker in markers:
                published = marker.read_text().strip() if marker.exists() else ""
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
        self._markers[0].mark_seen()
