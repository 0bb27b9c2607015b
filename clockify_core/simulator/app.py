"""``create_simulator_app``: Clockify's API, reports host and add-on endpoints, plus ``/__sim``.

Layout when served at ``http://127.0.0.1:PORT``: REST at ``/api/v1`` (``backendUrl`` =
``.../api``), add-on endpoints at ``/api/addon``, reports at ``/reports/v1``
(``reportsUrl`` = ``.../reports``), control at ``/__sim``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp

from clockify_core.simulator.api import (
    addon,
    changes,
    entities,
    reports,
    time_entries,
    webhooks,
    workspaces,
)
from clockify_core.simulator.config import SimulatorConfig
from clockify_core.simulator.control import router as control_router
from clockify_core.simulator.errors import install_clockify_error_shape
from clockify_core.simulator.faults import FaultMiddleware
from clockify_core.simulator.state import Simulator
from clockify_core.web.problems import install_error_handlers


class SimulatorApp(FastAPI):
    """Faults sit outside Starlette's error middleware, so a drop is not logged as a crash."""

    def build_middleware_stack(self) -> ASGIApp:
        return FaultMiddleware(super().build_middleware_stack(), lambda: self.state.simulator.faults)


def create_simulator_app(config: SimulatorConfig | None = None, *, simulator: Simulator | None = None) -> FastAPI:
    """Build the app around ``simulator`` (or a new one from ``config``).

    The lifespan starts and stops the simulator only when the app created it; a caller
    that passes its own simulator owns its lifecycle (``async with simulator``).
    """
    sim = simulator or Simulator(config)
    owned = simulator is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if owned:
            async with sim:
                yield
        else:
            yield

    app = SimulatorApp(title="Clockify simulator", version="1", lifespan=lifespan, docs_url="/__sim/docs",
                  redoc_url=None, openapi_url="/__sim/openapi.json")
    app.state.simulator = sim
    install_error_handlers(app)
    install_clockify_error_shape(app)
    for module in (workspaces, entities, time_entries, changes, webhooks, addon):
        app.include_router(module.router, prefix="/api")
    app.include_router(reports.router, prefix="/reports")
    app.include_router(control_router)
    return app
