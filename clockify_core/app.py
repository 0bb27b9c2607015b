"""The kit's app factory: a service calls :func:`create_addon_app` with its settings, its
profile (tier policy) and the capabilities it composes (``clockify_core.capability``).

The factory only assembles: routes, handlers, loops and manifest parts all come from the
capabilities. The same :class:`Composition` serves the web app and the ``worker`` command
(``clockify_core.cli``), so both process the inbox and jobs identically.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI

from clockify_core.capability import Capability, Composition
from clockify_core.config import ServiceSettings
from clockify_core.manifest.router import router as manifest_router
from clockify_core.observability.logging import configure_logging
from clockify_core.observability.metrics import Metrics
from clockify_core.runtime import open_runtime
from clockify_core.startup import StartupError, database_lines, exit_process, failure_lines
from clockify_core.tiers import ServiceProfile
from clockify_core.web.apidocs import install_docs
from clockify_core.web.bodylimit import BodyLimitMiddleware
from clockify_core.web.middleware import RequestContextMiddleware
from clockify_core.web.problems import install_error_handlers

# The receivers bound their bodies themselves (WEBHOOKS__MAX_BODY_BYTES).
WEBHOOK_PATHS = ("/webhooks/",)


def create_addon_app(
    settings: ServiceSettings,
    profile: ServiceProfile,
    capabilities: Sequence[Capability],
    *,
    clockify_transport: httpx.AsyncBaseTransport | None = None,
    configure_logs: bool = True,
    server_process: bool = False,
) -> FastAPI:
    """Build a service app. ``clockify_transport`` replaces the innermost outbound layer
    (tests route Clockify calls to the in-process simulator with it). ``server_process``
    says the app owns its process (the ``main:app`` entry points under uvicorn or
    gunicorn): after startup the garbage collector's heap is frozen."""
    composition = Composition(tuple(capabilities))
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
            await composition.open(runtime, stack)
            app.state.runtime = runtime
            if settings.worker.enabled:
                composition.start_loops(runtime)
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
    app.state.manifest_parts = composition.manifest()
    install_error_handlers(app)
    # Added first, so it runs inside the request context and its 413 carries the request id.
    app.add_middleware(BodyLimitMiddleware, limit=settings.security.max_body_bytes, exempt=WEBHOOK_PATHS)
    app.add_middleware(RequestContextMiddleware, metrics=metrics, access_log=settings.logging.access_log)

    # The webhook receiver takes the most traffic: served from plain routes ahead of all others.
    app.router.routes[:0] = [route for c in composition.capabilities for route in c.front_routes]
    app.include_router(manifest_router)
    for router in (r for c in composition.capabilities for r in c.routers):
        app.include_router(router)
    return app
