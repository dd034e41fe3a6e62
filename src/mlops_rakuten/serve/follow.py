"""Follow a registry stage: serve whatever version ``NAME#STAGE`` points to now, switching without a restart.

Every ``interval`` seconds (RAKUTEN_FOLLOW_SECONDS, or `rakuten serve --follow [SECONDS]`) one worker of
the server - whichever holds ``registry.lock`` - asks the git remote for the
registry's tags (`git ls-remote`, a few hundred bytes). When they moved (a
promotion or a rollback with `gto assign`), or the last attempt failed, it
resolves the reference again, downloads the version's model (`dvc artifacts
get`), checks its md5 against that commit's dvc.lock and loads it once to be
sure it is a model. Only then does it write ``registry-served.json``; every
worker's background thread notices that file within a second, loads the file
and swaps it in with one assignment, so requests never wait for a load.

A version that cannot be fetched, verified or loaded is never served: the
reason goes to the log, to ``registry-status.json`` (every worker's /health
says "degraded" and /info shows it) and to a metric, and the next check
tries again. `POST /reload` runs a check at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from mlops_rakuten.core.atomic import atomic_open
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.ops.commands import run
from mlops_rakuten.serve.model import ModelHolder
from mlops_rakuten.serve.settings import Settings
from mlops_rakuten.serve.watch import FileWatch

log = logging.getLogger("serve.follow")

FOLLOW_SECONDS_ENV = "RAKUTEN_FOLLOW_SECONDS"  # 0 or unset: the version resolved at start, until /reload
SERVED_FILE = "registry-served.json"  # the version every worker serves (written by the checking worker)
STATUS_FILE = "registry-status.json"  # the last check: when, and why it failed


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def follow_seconds(env: dict[str, str] | None = None) -> float:
    value = (os.environ if env is None else env).get(FOLLOW_SECONDS_ENV, "0") or "0"
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1
    if seconds < 0:
        raise InputError(f"{FOLLOW_SECONDS_ENV} = {value!r}, expected seconds between registry checks (0: none)")
    return seconds


def registry_tags(root: Path, remote: str = "origin") -> str:
    """A digest of the remote's tags (this clone's own without a remote): it changes when any tag moves."""
    if run(["git", "remote", "get-url", remote], root, check=False).returncode != 0:
        command = ["git", "for-each-ref", "--format=%(objectname) %(refname)", "refs/tags"]
    else:
        command = ["git", "ls-remote", "--tags", remote]
    result = run(command, root, check=False, timeout=60)
    if result.returncode != 0:
        raise InputError(f"{' '.join(command[:2])} {remote}: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    return hashlib.sha256(result.stdout.encode()).hexdigest()


def write_served(state_dir: Path, resolved: dict[str, Any], since: str | None = None) -> dict[str, Any]:
    """Tell every worker to serve ``resolved`` (a registry.ResolvedModel as a dict), from ``since`` (now)."""
    served = {**resolved, "since": since or now()}
    with atomic_open(state_dir / SERVED_FILE) as handle:
        json.dump(served, handle)
    return served


def start_serving(state_dir: Path, resolved: dict[str, Any]) -> None:
    """At server start, before any worker: the version resolved, and no failure left from a previous run."""
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / STATUS_FILE).unlink(missing_ok=True)
    write_served(state_dir, resolved)


def attach(settings: Settings, holder: ModelHolder, metrics) -> "RegistryFollower | None":
    """A follower for a server of a registry reference (started unless RAKUTEN_FOLLOW_SECONDS is 0)."""
    if not settings.registry_model:
        return None
    follower = RegistryFollower(settings, holder, metrics, follow_seconds())
    follower.start()
    return follower


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class RegistryFollower:
    """One per worker: keeps ``holder`` on the version the registry stage names."""

    def __init__(self, settings: Settings, holder: ModelHolder, metrics, interval: float):
        self.root = settings.project_dir
        self.state_dir = settings.state_dir
        self.holder = holder
        self.metrics = metrics
        self.interval = interval
        self.served: dict[str, Any] = _read_json(self.state_dir / SERVED_FILE) or {
            **(settings.registry_model or {}),
            "since": now(),
        }
        self.reference = self.served["reference"]
        self.status: dict[str, Any] = _read_json(self.state_dir / STATUS_FILE) or {}
        self._served_watch = FileWatch(self.state_dir / SERVED_FILE)
        self._status_watch = FileWatch(self.state_dir / STATUS_FILE)
        holder.path = Path(self.served["path"])  # what create_app's first load reads
        holder.version, holder.since = self.served["version"], self.served["since"]
        metrics.model_stage = self.reference.partition("#")[2]

    @property
    def error(self) -> str | None:
        return self.status.get("error")

    def describe(self) -> dict[str, Any]:
        """For /info: how often the registry is checked, the last check, and why it failed."""
        return {"follow_seconds": self.interval, "checked_at": self.status.get("checked_at"), "error": self.error}

    def start(self) -> None:
        threading.Thread(target=self._run, name="registry-follower", daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(1.0)
            try:
                self.sync()
                if self.interval and self._due():
                    self.check(wait=False)
            except Exception:  # the thread must outlive any surprise; the model keeps serving
                log.exception("registry follower")

    def _due(self) -> bool:
        checked = self.status.get("checked_unix")
        return checked is None or time.time() - checked >= self.interval

    def sync(self) -> None:
        """Serve what registry-served.json names, if not already; pick up the last check's outcome."""
        if self._status_watch.changed():
            status = _read_json(self.state_dir / STATUS_FILE) or self.status
            # The metric first: once /health reads the new status, /metrics already agrees with it.
            self.metrics.registry_failing.set(1 if status.get("error") else 0)
            self.status = status
        if not self._served_watch.changed():
            return
        served = _read_json(self.state_dir / SERVED_FILE)
        loaded = self.holder.loaded
        if not served or (loaded is not None and loaded.md5 == served["md5"]):
            self.served = served or self.served
            return
        if self.holder.switch(Path(served["path"]), served["version"], served["since"], expected_md5=served["md5"]):
            self.served = served
            log.info(
                "now serving %s %s (md5 %s) for %s", served["name"], served["version"], served["md5"], self.reference
            )

    @contextlib.contextmanager
    def _checker(self, wait: bool) -> Iterator[bool]:
        """True for the one worker that may check now (an flock, so one check at a time per server)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_dir / "registry.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def check(self, wait: bool = True, force: bool = False) -> dict[str, Any]:
        """Look at the registry; publish a new version once verified. The status written, as a dict."""
        from mlops_rakuten.core.predict import load_model
        from mlops_rakuten.ops.registry import fetch_model

        with self._checker(wait) as mine:
            if not mine:
                return self.status
            last = _read_json(self.state_dir / STATUS_FILE) or {}
            status: dict[str, Any] = {"checked_at": now(), "checked_unix": time.time(), "error": None}
            try:
                tags = registry_tags(self.root)
                status["tags"] = tags
                if force or last.get("error") or tags != last.get("tags"):
                    resolved = fetch_model(self.reference, self.root, self.state_dir / "registry").as_dict()
                    current = _read_json(self.state_dir / SERVED_FILE) or self.served
                    if resolved["md5"] != current["md5"]:
                        load_model(Path(resolved["path"]))  # a file that is not a model stops here
                        write_served(self.state_dir, resolved)
                        log.warning(
                            "%s moved: %s -> %s (md5 %s)",
                            self.reference,
                            current["version"],
                            resolved["version"],
                            resolved["md5"],
                        )
                    elif resolved["stages"] != current.get("stages"):  # same bytes, other stages: no reload
                        write_served(self.state_dir, resolved, since=current.get("since"))
            except (InputError, OSError, subprocess.SubprocessError) as exc:
                status["error"] = f"{self.reference}: {exc}; still serving {self.served['version']}"
                status["tags"] = last.get("tags")
                self.metrics.registry_failures.inc()
                log.error(
                    "registry check failed, will retry in %ss: %s", self.interval or "(next /reload)", status["error"]
                )
            with atomic_open(self.state_dir / STATUS_FILE) as handle:
                json.dump(status, handle)
        self.metrics.registry_failing.set(1 if status["error"] else 0)  # before /health can read the status
        self.status = status
        self._status_watch.mark_seen()
        return status
