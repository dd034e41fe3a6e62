"""The FastAPI app: settings, users, model, jobs and metrics on ``app.state``; one router per concern.

``uvicorn --factory mlops_rakuten.serve.app:create_app`` (what `rakuten serve` runs)
builds one app per worker process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from mlops_rakuten.monitoring.prediction_log import LogSettings, PredictionLog
from mlops_rakuten.ops.ingest import finish_interrupted_ingest
from mlops_rakuten.serve import follow, roles
from mlops_rakuten.serve.batching import Batcher
from mlops_rakuten.serve.connections import on_loop_error
from mlops_rakuten.serve.fast_predict import FastPredict
from mlops_rakuten.serve.forwarded import ForwardedMiddleware, TrustedProxies
from mlops_rakuten.serve.guard import GuardMiddleware, route_rules
from mlops_rakuten.serve.jobs import TrainJobs
from mlops_rakuten.serve.login_limits import LoginLimits
from mlops_rakuten.serve.metrics import Metrics, MetricsMiddleware
from mlops_rakuten.serve.model import ModelHolder
from mlops_rakuten.serve.retrain_jobs import RetrainJobs
from mlops_rakuten.serve.routers import predict
from mlops_rakuten.serve.settings import Settings, load_settings
from mlops_rakuten.serve.users import UserStore

log = logging.getLogger("serve")


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with where and what, without FastAPI's echo of the input (a refused 20,000-character text)."""
    errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    asyncio.get_running_loop().set_exception_handler(on_loop_error)  # no traceback per refused connection
    yield
    app.state.prediction_log.close()  # what is queued reaches the disk before the worker exits
    if app.state.metrics.multiprocess:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())  # drop this worker's live gauges


def create_app(settings: Settings | None = None, fast_predict: bool = True) -> FastAPI:
    """The app for ``settings`` (default: from the environment, which must hold RAKUTEN_JWT_SECRET).

    ``fast_predict``: POST /predict answered by serve/fast_predict.py rather than through FastAPI's
    routing (the same answers; off only to compare the two).
    """
    settings = settings or load_settings()
    role = roles.role()
    if roles.writes_project(role):
        finish_interrupted_ingest(settings.project_dir, settings.state_dir)
    metrics = Metrics()
    own_marker, watched = roles.model_markers(settings)  # a replica watches the writer's marker, writes its own
    holder = ModelHolder(settings.model_path, own_marker, metrics.model_changed, watched=watched)
    follower = follow.attach(settings, holder, metrics)  # a registry stage followed: its version, kept current
    jobs = TrainJobs(settings, holder, on_finish=lambda outcome: metrics.train_runs.labels(outcome).inc())
    if jobs.unfinished():  # the model file may be from a run that never finished: not served before it is
        holder.load_last_good()
    else:
        holder.load()  # a project without a model still serves /health, /info and /train

    app = FastAPI(
        title="Rakuten product classifier",
        version="1",
        lifespan=_lifespan,
        description="Classifies Rakuten France products into 27 prdtypecodes with the DVC-built model.",
        # The service's metrics are Prometheus's (serve/metrics.py). With FastAPI's OpenTelemetry hooks on,
        # every request asked OpenTelemetry for its providers (~2 % of a worker under load) to find none.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.users = UserStore(settings.users_file)
    app.state.login_limits = LoginLimits(settings.login_per_minute, settings.login_failures_per_minute)
    app.state.model = holder
    app.state.batcher = Batcher(holder.current, on_batch=metrics.batch_size.observe)
    app.state.metrics = metrics
    app.state.prediction_log = PredictionLog(LogSettings.from_env(settings.state_dir), metrics.registry)
    app.state.jobs = jobs
    app.state.follower = follower
    if roles.writes_project(role):
        app.state.jobs.recover()  # a run a stopped server left: settled now, or followed until it ends
    app.state.retrain_jobs = RetrainJobs(settings, holder)
    # Starlette types handlers for Exception; this one is registered for its subclass only.
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    routers = roles.routers(role)
    for module in routers:
        app.include_router(module.router)
    api_routes = [route for module in routers for route in module.router.routes]  # the routers have no prefix
    route_paths = {route.path for route in api_routes if "{" not in route.path}
    route_paths.update(url for url in (app.openapi_url, app.docs_url, app.redoc_url) if url)
    # The last added runs first: metrics time everything, including what the guard refuses unread.
    if fast_predict and predict in routers:
        app.add_middleware(FastPredict, exception_handlers=app.exception_handlers)  # after the guard
    app.add_middleware(GuardMiddleware, state=app.state, rules=route_rules(api_routes))
    app.add_middleware(MetricsMiddleware, metrics=metrics, route_paths=route_paths)
    # Outermost: every part of the app sees the client's address, not the proxy's.
    app.add_middleware(ForwardedMiddleware, trusted=TrustedProxies(settings.trusted_proxies))
    return app
