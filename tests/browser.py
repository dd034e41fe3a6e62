"""Debian's headless Chromium, driven over the DevTools protocol (websocket-client), for page tests.

Everything stays on loopback: the pages come from a static server on a random port, and Chromium
runs with its background networking (updates, sync, QUIC) switched off.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
]
VIEWPORT = {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}
MAX_SHOT_HEIGHT = 2400
SETTLE_SECONDS = 1.5  # after the load event: scripts that run late (search index, workers) report too


@contextlib.contextmanager
def serve_directory(root: Path):
    """A static HTTP server for ``root`` on a free loopback port; yields its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class PageVisit:
    errors: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    heading: str = ""
    # code blocks whose text is wider than their box (cut off, or behind a hidden scrollbar)
    cut_code: list[str] = field(default_factory=list)
    # tables wider than their box or the scroller Material wraps them in: their first row's text
    cut_tables: list[str] = field(default_factory=list)


class Chromium:
    """One headless browser; ``open(url, screenshot)`` loads a page in a fresh tab and reports on it."""

    def __init__(self, executable: str, profile: Path, timeout: float = 60.0):
        self.executable, self.profile, self.timeout = executable, profile, timeout
        self._next_id = 0

    def __enter__(self) -> "Chromium":
        import websocket

        self.log = open(self.profile.parent / f"{self.profile.name}.log", "w")
        self.process = subprocess.Popen(
            [self.executable, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        port_file = self.profile / "DevToolsActivePort"  # Chromium writes its port and path here
        deadline = time.monotonic() + self.timeout
        while not (port_file.is_file() and len(port_file.read_text().split()) == 2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"chromium did not start: see {self.log.name}")
            time.sleep(0.1)
        port, path = port_file.read_text().split()
        # No Origin header: Chromium refuses DevTools connections from unlisted origins.
        self.socket = websocket.create_connection(
            f"ws://127.0.0.1:{port}{path}", timeout=self.timeout, suppress_origin=True
        )
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(Exception):
            self.socket.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def _receive(self) -> dict:
        return json.loads(self.socket.recv())

    def send(
        self, method: str, params: dict | None = None, session: str | None = None, events: list | None = None
    ) -> dict:
        """Send one command and wait for its answer; events that arrive meanwhile go to ``events``."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.socket.send(json.dumps(message))
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if events is not None and "method" in reply:
                events.append(reply)

    def _collect_until(self, events: list, done, seconds: float) -> None:
        import websocket

        deadline = time.monotonic() + seconds
        self.socket.settimeout(0.2)
        try:
            while time.monotonic() < deadline and not done():
                with contextlib.suppress(websocket.WebSocketTimeoutException):
                    events.append(self._receive())
        finally:
            self.socket.settimeout(self.timeout)

    def open(self, url: str, screenshot: Path) -> PageVisit:
        events: list[dict] = []
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.send(f"{domain}.enable", session=session, events=events)
            self.send("Emulation.setDeviceMetricsOverride", VIEWPORT, session=session, events=events)
            self.send("Page.navigate", {"url": url}, session=session, events=events)

            def loaded():
                return any(e.get("method") == "Page.loadEventFired" and e.get("sessionId") == session for e in events)

            self._collect_until(events, loaded, self.timeout)
            if not loaded():
                raise RuntimeError(f"{url}: no load event within {self.timeout} s")
            self._collect_until(events, lambda: False, SETTLE_SECONDS)

            visit = PageVisit(errors=_errors([e for e in events if e.get("sessionId") == session]))
            report = self.send(
                "Runtime.evaluate",
                {
                    "returnByValue": True,
                    "expression": """JSON.stringify({
                heading: (document.querySelector('h1') || {}).textContent || '',
                images: [...document.images].map(i => ({src: i.currentSrc || i.src,
                    loaded: i.complete && i.naturalWidth > 0, width: i.naturalWidth})),
                cut_code: [...document.querySelectorAll('pre > code')]
                    .filter(c => c.scrollWidth > c.clientWidth + 1)
                    .map(c => c.textContent.split('\\n').reduce((a, b) => (b.length > a.length ? b : a))),
                cut_tables: [...document.querySelectorAll('article table')]
                    .filter(t => [t, t.closest('.md-typeset__scrollwrap') || t.parentElement]
                        .some(box => box.scrollWidth > box.clientWidth + 1))
                    .map(t => t.rows[0].textContent.trim().replace(/\\s+/g, ' '))})""",
                },
                session=session,
                events=events,
            )
            page = json.loads(report["result"]["value"])
            visit.heading, visit.images, visit.cut_code = page["heading"].strip(), page["images"], page["cut_code"]
            visit.cut_tables = page["cut_tables"]
            # The whole page down to MAX_SHOT_HEIGHT, so the images below the fold are in the picture.
            size = self.send("Page.getLayoutMetrics", session=session, events=events)["cssContentSize"]
            clip = {
                "x": 0,
                "y": 0,
                "width": VIEWPORT["width"],
                "height": min(size["height"], MAX_SHOT_HEIGHT),
                "scale": 1,
            }
            shot = self.send(
                "Page.captureScreenshot",
                {"format": "png", "clip": clip, "captureBeyondViewport": True},
                session=session,
                events=events,
            )
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            return visit
        finally:
            self.send("Target.closeTarget", {"targetId": target})


def _errors(events: list[dict]) -> list[str]:
    """What a person with the console open would see as errors, and failed or refused requests."""
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            found.append(f"exception: {details.get('exception', {}).get('description') or details.get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            found.append(
                "console.error: "
                + " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            )
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            found.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            found.append(f"request failed: {params.get('errorText')} ({params.get('type')})")
        elif method == "Network.responseReceived" and params["response"].get("status", 200) >= 400:
            found.append(f"HTTP {params['response']['status']}: {params['response'].get('url')}")
    return found
