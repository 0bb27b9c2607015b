"""A real service installed into the in-process simulator, for end-to-end tests.

The service runs with its lifespan, talks to the simulator through the simulator's
transport, receives lifecycle calls and webhooks from it over ASGI, and keeps its
data in a real database. Background loops are off by default so a test decides when
the inbox and the jobs run (:meth:`AddonHarness.process`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from clockify_core.config import ServiceSettings
from clockify_core.jobs.worker import run_one
from clockify_core.runtime import Runtime
from clockify_core.simulator.marketplace import Installation as SimInstallation
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.databases import TEST_MAX_OVERFLOW, TEST_POOL_SIZE
from clockify_core.webhooks.worker import process_batch

ADDON_URL = "http://addon.test"


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), dict) else value
    return out


@dataclass
class AddonHarness:
    app: FastAPI
    client: httpx.AsyncClient
    sim: InProcessSimulator
    settings: ServiceSettings
    installation: SimInstallation | None

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    @property
    def workspace_id(self) -> str:
        assert self.installation is not None
        return self.installation.workspace_id

    async def process(self, *, rounds: int = 200) -> None:
        """Deliver pending webhooks, then run the inbox and due jobs until all are idle."""
        for _ in range(rounds):
            await self.sim.drain()
            busy = await process_batch(self.runtime)
            busy += await run_one(self.runtime)
            if not busy and not self.sim.sim.delivery.pending:
                return
        raise AssertionError("the add-on did not become idle")

    def user_token(self, *, role: str = "OWNER", user_id: str | None = None, **kw: Any) -> str:
        assert self.installation is not None
        return self.installation.signer.user_token(
            self.installation.workspace_id, self.installation.addon_id,
            user_id=user_id or self.sim.workspace.owner_id, backend_url=self.sim.sim.urls.backend,
            reports_url=self.sim.sim.urls.reports, workspace_role=role, **kw,
        )


@asynccontextmanager
async def installed_addon(
    sim: InProcessSimulator,
    create_app: Callable[..., FastAPI],
    settings_cls: type[ServiceSettings],
    *,
    db_url: str,
    install: bool = True,
    base_url: str = ADDON_URL,
    **overrides: Any,
) -> AsyncIterator[AddonHarness]:
    sim_host = httpx.URL(sim.base_url).host
    defaults: dict[str, Any] = {
        "base_url": base_url,
        "database": {"url": db_url, "pool_size": TEST_POOL_SIZE, "max_overflow": TEST_MAX_OVERFLOW},
        "signing": {"public_key": sim.sim.keys.public_pem.decode()},
        "http": {"allowed_api_hosts": [sim_host], "backoff_base": 0.01, "backoff_max": 0.05},
        "worker": {"enabled": False},
        "mirror": {"refetch": "always"},
    }
    settings = settings_cls(**_merge(defaults, overrides))
    app = create_app(settings, clockify_transport=sim.transport, configure_logs=False)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
        await sim.mount_addon(base_url, manager.app)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url=base_url) as client:
            installation = await sim.install(base_url) if install else None
            yield AddonHarness(app, client, sim, settings, installation)
