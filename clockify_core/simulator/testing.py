"""Pytest fixtures that put the simulator in front of a test, in-process or on a loopback port.

``clockify_core.testing.plugin`` imports these, so every test suite that loads the plugin has:

* ``simulator_config`` - a small, fixed-anchor :class:`SimulatorConfig` (override it in a conftest);
* ``simulator`` - an :class:`InProcessSimulator`: the app and its state, reachable without a socket
  through ``httpx.ASGITransport``; add-on apps can be mounted so webhooks reach them in-process too;
* ``simulator_server`` - a :class:`ServedSimulator`: uvicorn on 127.0.0.1 in a background thread,
  with its base URL and a control client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from clockify_core.simulator.app import create_simulator_app
from clockify_core.simulator.config import DataScale, SimulatorConfig
from clockify_core.simulator.faults import SimulatorTransport
from clockify_core.simulator.marketplace import Installation
from clockify_core.simulator.model import Workspace
from clockify_core.simulator.server import BackgroundServer
from clockify_core.simulator.state import Simulator

IN_PROCESS_URL = "http://clockify.test"
TEST_ANCHOR = datetime(2025, 6, 2, tzinfo=UTC)


def small_config(**overrides: Any) -> SimulatorConfig:
    """A fast configuration: 2 workspaces x 12 users x 2,000 entries, anchored on a fixed date."""
    base: dict[str, Any] = {"seed": 7, "anchor": TEST_ANCHOR, "public_url": IN_PROCESS_URL,
                            "scale": DataScale(workspaces=2, users=12, projects=20, time_entries=2000)}
    return SimulatorConfig(**(base | overrides))


@dataclass
class InProcessSimulator:
    sim: Simulator
    app: FastAPI
    transport: httpx.AsyncBaseTransport
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.sim.urls.base

    @property
    def workspace(self) -> Workspace:
        return self.sim.workspace()

    def client(self, *, token: str | None = None, api_key: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        """A client for the simulator; ``token`` goes in X-Addon-Token, ``api_key`` in X-Api-Key."""
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["X-Addon-Token"] = token
        if api_key:
            headers["X-Api-Key"] = api_key
        client = httpx.AsyncClient(transport=self.transport, base_url=self.base_url, headers=headers, **kwargs)
        self.clients.append(client)
        return client

    def owner_client(self, workspace: Workspace | None = None) -> httpx.AsyncClient:
        ws = workspace or self.workspace
        return self.client(api_key=ws.api_keys[ws.owner_id])

    async def mount_addon(self, base_url: str, app: Any) -> None:
        """Deliver lifecycle calls and webhooks for ``base_url`` to an in-process ASGI app."""
        await self.sim.mount(base_url, httpx.ASGITransport(app=app))

    async def install(self, addon_url: str, **kwargs: Any) -> Installation:
        return await self.sim.marketplace.install(addon_url, **kwargs)

    async def drain(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - a budget, not a cancel scope
        if not await self.sim.delivery.drain(timeout):
            raise AssertionError(f"{self.sim.delivery.pending} deliveries still pending after {timeout}s")


@asynccontextmanager
async def in_process_simulator(config: SimulatorConfig | None = None, **kwargs: Any) -> AsyncIterator[InProcessSimulator]:
    """The simulator without a socket; ``kwargs`` go to :class:`Simulator` (transport, mounts, clock...)."""
    sim = Simulator(config or small_config(), **kwargs)
    app = create_simulator_app(simulator=sim)
    handle = InProcessSimulator(sim, app, SimulatorTransport(app=app))
    async with sim:
        try:
            yield handle
        finally:
            for client in handle.clients:
                await client.aclose()


@dataclass
class ServedSimulator:
    base_url: str
    control: httpx.Client
    config: SimulatorConfig
    server: BackgroundServer

    def info(self) -> dict[str, Any]:
        data: dict[str, Any] = self.control.get("/__sim/info").raise_for_status().json()
        return data

    @property
    def public_key_pem(self) -> str:
        return str(self.info()["publicKey"])


@contextmanager
def served_simulator(config: SimulatorConfig | None = None) -> Iterator[ServedSimulator]:
    """The simulator on a free loopback port (uvicorn in a daemon thread)."""
    config = (config or small_config()).model_copy(update={"host": "127.0.0.1", "port": 0, "public_url": None})
    with BackgroundServer(config) as server, httpx.Client(base_url=server.base_url, timeout=30, trust_env=False) as control:
        yield ServedSimulator(server.base_url, control, server.config, server)


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return small_config()


@pytest.fixture
async def simulator(simulator_config: SimulatorConfig) -> AsyncIterator[InProcessSimulator]:
    async with in_process_simulator(simulator_config) as handle:
        yield handle


@pytest.fixture
def simulator_server(simulator_config: SimulatorConfig) -> Iterator[ServedSimulator]:
    with served_simulator(simulator_config) as served:
        yield served
