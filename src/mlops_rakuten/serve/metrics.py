"""Prometheus metrics: requests and latency per route and status, predictions per class, the model served.

With several uvicorn workers, ``rakuten serve`` sets PROMETHEUS_MULTIPROC_DIR
so every worker writes its values to shared files and a scrape of any worker
sums them all; otherwise a scrape would see one random worker's counts.
"""

from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlops_rakuten.core.categories import CODES
from mlops_rakuten.serve import closed
from mlops_rakuten.serve.model import LoadedModel

# Label values come from a fixed set, whatever a client sends: any other method, and any path that
# is not a route, count as "other" (each new value would be a new series, kept forever).
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
OTHER = "other"

# Predictions take milliseconds, ingest and /token (argon2) up to seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        # One registry per app, so tests can build many apps in one process.
        self.registry = CollectorRegistry()
        labels = ["method", "route", "status"]
        self.requests = Counter("rakuten_http_requests_total", "HTTP requests answered", labels, registry=self.registry)
        self.latency = Histogram(
            "rakuten_http_request_duration_seconds",
            "Time to answer an HTTP request",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "rakuten_predictions_total",
            "Products classified, by top-1 prdtypecode",
            ["prdtypecode"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "rakuten_predict_batch_size",
            "Products per model call (micro-batching)",
            buckets=(1, 2, 4, 8, 16, 32),
            registry=self.registry,
        )
        self.train_runs = Counter(
            "rakuten_train_runs_total", "Finished training runs, by outcome", ["status"], registry=self.registry
        )
        # An "info" metric as a gauge set to 1: prometheus-client's Info type has no multiprocess mode.
        # version and stage: of the registry model followed (serve/follow.py), empty for the workspace's;
        # since: when the server began to serve that version (one value for all workers).
        self.model_info = Gauge(
            "rakuten_model_info",
            "The model being served (value 1)",
            ["md5", "path", "version", "stage", "since"],
            multiprocess_mode="livemax",
            registry=self.registry,
        )
        self.model_stage = ""
        self.registry_failures = Counter(
            "rakuten_registry_check_failures_total",
            "Registry checks whose version could not be fetched, verified or loaded",
            registry=self.registry,
        )
        self.registry_failing = Gauge(
            "rakuten_registry_check_failing",
            "1 while the last registry check failed (the previous version serves)",
            multiprocess_mode="livemax",
            registry=self.registry,
        )
        for code in CODES:  # every class shows up from the start, at 0
            self.predictions.labels(str(code))
        self.connections_closed = Counter(
            "rakuten_connections_closed_total",
            "Connections the server closed: slow (request not in time), not_reading (answers not taken), "
            "crowded_out (at the connection limit), refused (no file descriptor to accept them)",
            ["reason"],
            registry=self.registry,
        )
        for reason in ("slow", "not_reading", "crowded_out", "refused"):
            self.connections_closed.labels(reason)
        closed.dropped.counter = self.connections_closed  # this process's app counts them from now

    def _info_labels(self, model: LoadedModel) -> tuple[str, ...]:
        return model.md5, str(model.path), model.version, self.model_stage if model.version else "", model.since

    def model_changed(self, previous: LoadedModel | None, current: LoadedModel) -> None:
        if previous is not None and self._info_labels(previous) != self._info_labels(current):
            old = self.model_info.labels(*self._info_labels(previous))
            old.set(0)  # in multiprocess files a series cannot be removed, only zeroed
            if not self.multiprocess:
                self.model_info.remove(*self._info_labels(previous))
        self.model_info.labels(*self._info_labels(current)).set(1)

    def exposition(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        return generate_latest(merged)


class MetricsMiddleware:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware): time every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics, route_paths: set[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.route_paths = route_paths  # the app's paths without parameters, for requests refused before routing
        # Each (method, route, status)'s two series, looked up once: labels() takes a lock and builds a key
        # on every call. Bounded, as every label takes values from a fixed set.
        self._series: dict[tuple[str, str, str], tuple] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            # The route template (/train/{job_id}), not the path, so job ids do not explode the label set.
            route = getattr(scope.get("route"), "path", None)
            if route is None:
                route = scope["path"] if scope["path"] in self.route_paths else OTHER
            method = scope["method"] if scope["method"] in METHODS else OTHER
            labels = (method, route, str(status))
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = (
                    self.metrics.requests.labels(*labels),
                    self.metrics.latency.labels(*labels),
                )
            series[0].inc()
            series[1].observe(time.perf_counter() - start)
