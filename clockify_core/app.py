"""The kit's app factory: a service calls :func:`create_addon_app` with its settings and profile.

Capabilities plug in at two points: routers (HTTP) and :func:`setup_runtime`
(event handlers, job handlers). The same setup serves the web app and the
``worker`` command, so both process the inbox and jobs identically.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import APIRouter, FastAPI

from clockify_core.apidocs import install_docs
from clockify_core.config import ServiceSettings
from clockify_core.errors import install_error_handlers
from clockify_core.explorer.router import router as explorer_router
from clockify_core.flows.engine import FlowEngine
from clockify_core.flows.executor import flow_loop
from clockify_core.flows.router import router as flows_router
from clockify_core.health.router import clockify_health_router
from clockify_core.health.router import router as health_router
from clockify_core.jobs.models import JobKind
from clockify_core.jobs.worker import job_loop
from clockify_core.lifecycle.registration import register_webhooks, unregister_webhooks
from clockify_core.lifecycle.router import router as lifecycle_router
from clockify_core.manifest.router import router as manifest_router
from clockify_core.mirror.handler import MirrorHandler
from clockify_core.observability.bodylimit import BodyLimitMiddleware
from clockify_core.observability.logging import configure_logging
from clockify_core.observability.metrics import Metrics
from clockify_core.observability.middleware import RequestContextMiddleware
from clockify_core.operator.router import router as operator_router
from clockify_core.retention.service import retention_loop
from clockify_core.runtime import Runtime, open_runtime
from clockify_core.startup import StartupError, database_lines, exit_process, failure_lines
from clockify_core.status.router import router as status_router
from clockify_core.sync import jobs as sync_jobs
from clockify_core.sync.router import router as sync_router
from clockify_core.sync.scheduler import scheduler_loop
from clockify_core.tiers import ServiceProfile
from clockify_core.ui.router import router as ui_router
from clockify_core.webhooks import custom
from clockify_core.webhooks.router import fast_route as webhooks_fast_route
from clockify_core.webhooks.router import router as webhooks_router
from clockify_core.webhooks.worker import inbox_loop

# The receivers bound their bodies themselves (WEBHOOKS__MAX_BODY_BYTES).
WEBHOOK_PATHS = ("/webhooks/",)


def setup_runtime(runtime: Runtime) -> None:
    """Register every capability's event and job handlers on a fresh runtime."""
    runtime.event_handlers.append(MirrorHandler())
    # After the mirror: flows see the event once it is applied, in the same transaction.
    runtime.event_handlers.append(FlowEngine())
    runtime.job_handlers[JobKind.REGISTER_WEBHOOKS] = register_webhooks
    runtime.job_handlers[JobKind.UNREGISTER_WEBHOOKS] = unregister_webhooks
    runtime.job_handlers[JobKind.BOOTSTRAP] = sync_jobs.bootstrap
    runtime.job_handlers[JobKind.SYNC] = sync_jobs.sync
    runtime.job_handlers[JobKind.BACKFILL] = sync_jobs.backfill
    runtime.job_handlers[JobKind.RECONCILE] = sync_jobs.reconcile


def start_workers(runtime: Runtime) -> None:
    worker = runtime.settings.worker
    for n in range(worker.concurrency):
        runtime.start(f"inbox-{n}", inbox_loop)
    for n in range(worker.job_concurrency):
        runtime.start(f"jobs-{n}", job_loop)
    if runtime.settings.flows.executor:
        for n in range(runtime.settings.flows.concurrency):
            runtime.start(f"flows-{n}", flow_loop)
    if runtime.settings.sync.scheduler:
        runtime.start("sync-scheduler", scheduler_loop)
    if runtime.settings.retention.enabled:
        runtime.start("retention", retention_loop)


def create_addon_app(
    settings: ServiceSettings,
    profile: ServiceProfile,
    *,
    routers: tuple[APIRouter, ...] = (),
    clockify_transport: httpx.AsyncBaseTransport | None = None,
    configure_logs: bool = True,
    server_process: bool = False,
) -> FastAPI:
    """Build a service app. ``clockify_transport`` replaces the innermost outbound layer
    (tests route Clockify calls to the in-process simulator with it). ``server_process``
    says the app owns its process (the ``main:app`` entry points under uvicorn or
    gunicorn): after startup the garbage collector's heap is frozen."""
    if configure_logs:
        configure_logging(settings.logging)
    metrics = Metrics(service=profile.name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            try:
                runtime = await stack.enter_async_context(
                    open_runtime(settings, profile, metrics, clockify_transport=clockify_transport)
                )
            except Exception as exc:
                # Database unreachable or missing, unreadable key...: one or two lines naming
                # the variable (clockify_core/startup.py), not a traceback.
                lines = failure_lines(exc, type(settings)) or await database_lines(exc, settings)
                if lines is None:
                    raise
                if server_process:
                    exit_process(lines)
                raise StartupError("\n".join(lines)) from exc
            setup_runtime(runtime)
            app.state.runtime = runtime
            if settings.worker.enabled:
                start_workers(runtime)
            if server_process:
                # Everything alive now (modules, routes, the OpenAPI index, pools) lives as long
                # as the process: out of the collector's sight, a full collection no longer
                # walks ~170k objects (30-60 ms with every request waiting) a few times a minute.
                gc.freeze()
            try:
                yield
            finally:
                await runtime.shutdown()

    app = FastAPI(
        title=profile.title,
        description=profile.description,
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served from installed files by install_docs below, not from a CDN
        redoc_url=None,
        # Metrics go to Prometheus (observability/metrics.py). FastAPI's native OpenTelemetry
        # hooks would otherwise look up the global providers (reading os.environ) on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_docs(app)
    app.state.settings = settings
    app.state.profile = profile
    app.state.metrics = metrics
    install_error_handlers(app)
    # Added first, so it runs inside the request context and its 413 carries the request id.
    app.add_middleware(BodyLimitMiddleware, limit=settings.security.max_body_bytes, exempt=WEBHOOK_PATHS)
    app.add_middleware(RequestContextMiddleware, metrics=metrics, access_log=settings.logging.access_log)

    # The webhook receiver takes the most traffic: served from a plain route ahead of all others.
    app.router.routes.insert(0, webhooks_fast_route)
    app.include_router(health_router)
    if profile.clockify_health_route:
        app.include_router(clockify_health_router)
    app.include_router(manifest_router)
    app.include_router(lifecycle_router)
    app.include_router(webhooks_router)
    app.include_router(status_router)
    app.include_router(operator_router)
    app.include_router(flows_router)
    app.include_router(sync_router)
    app.include_router(explorer_router)
    app.include_router(ui_router)
    if profile.custom_webhooks:
        app.include_router(custom.manage)
        app.include_router(custom.receive)
    for router in routers:
        app.include_router(router)
    return app
