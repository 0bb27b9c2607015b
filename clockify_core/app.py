"""The kit's app factory: a service calls :func:`create_addon_app` with its settings and profile."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI

from clockify_core.config import ServiceSettings
from clockify_core.errors import install_error_handlers
from clockify_core.health.router import clockify_health_router
from clockify_core.health.router import router as health_router
from clockify_core.manifest.router import router as manifest_router
from clockify_core.observability.logging import configure_logging
from clockify_core.observability.metrics import Metrics
from clockify_core.observability.middleware import RequestContextMiddleware
from clockify_core.runtime import Runtime, open_runtime
from clockify_core.tiers import ServiceProfile

# Hook for a service (or a test) to start extra work once the runtime exists.
StartupHook = Callable[[Runtime], Any]


def create_addon_app(
    settings: ServiceSettings,
    profile: ServiceProfile,
    *,
    routers: tuple[APIRouter, ...] = (),
    configure_logs: bool = True,
) -> FastAPI:
    if configure_logs:
        configure_logging(settings.logging)
    metrics = Metrics(service=profile.name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(settings, profile, metrics) as runtime:
            app.state.runtime = runtime
            try:
                yield
            finally:
                await runtime.shutdown()

    app = FastAPI(
        title=f"{profile.title}",
        description=profile.description,
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.profile = profile
    app.state.metrics = metrics
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)

    app.include_router(health_router)
    if profile.clockify_health_route:
        app.include_router(clockify_health_router)
    app.include_router(manifest_router)
    for router in routers:
        app.include_router(router)
    return app
