"""Flows end to end: a service installed in the simulator, a loopback HTTP server, helpers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

import universal_webhook.app
import universal_webhook.settings
from clockify_core.flows.executor import run_due
from clockify_core.flows.models import FlowRun, RunStatus
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import AddonHarness, installed_addon
from clockify_core.testing.loopback import LoopbackServer

# Fast retries so tests see a run fail or recover without waiting.
FAST_FLOWS: dict[str, Any] = {"retry_backoff_base": 0.01, "retry_backoff_max": 0.02}


@pytest.fixture
def loopback() -> Iterator[LoopbackServer]:
    with LoopbackServer.serve() as server:
        yield server


@pytest.fixture
async def uw(simulator: InProcessSimulator, pg_url: str, loopback: LoopbackServer) -> AsyncIterator[AddonHarness]:
    """universal_webhook (all events, http actions, custom sources), the loopback server allowlisted."""
    async with installed_addon(
        simulator, universal_webhook.app.create_app, universal_webhook.settings.Settings, db_url=pg_url,
        flows={**FAST_FLOWS, "http_allowlist": [f"127.0.0.1:{loopback.port}"]},
    ) as addon:
        await addon.process()
        yield addon


def admin(addon: AddonHarness) -> dict[str, str]:
    return {"X-Addon-Token": addon.user_token(role="OWNER")}


def member(addon: AddonHarness) -> dict[str, str]:
    return {"X-Addon-Token": addon.user_token(role="USER")}


async def create_flow(addon: AddonHarness, body: dict[str, Any]) -> dict[str, Any]:
    response = await addon.client.post("/api/flows", json=body, headers=admin(addon))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def settle(addon: AddonHarness, *, rounds: int = 200) -> None:
    """Deliver webhooks, drain the inbox and jobs, run due flow runs, until nothing is left
    (runs waiting for a retry are waited for)."""
    for _ in range(rounds):
        await addon.process()
        ran = await run_due(addon.runtime)
        if ran or addon.sim.sim.delivery.pending:
            continue
        async with addon.runtime.sessions() as session:
            waiting = await session.scalar(select(FlowRun.id).where(FlowRun.status == RunStatus.QUEUED).limit(1))
        if waiting is None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("flows did not settle")


async def runs_of(addon: AddonHarness, flow_id: str) -> list[FlowRun]:
    async with addon.runtime.sessions() as session:
        rows = await session.execute(select(FlowRun).where(FlowRun.flow_id == flow_id).order_by(FlowRun.id))
        return list(rows.scalars())


async def owner_api(sim: InProcessSimulator, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """Act in Clockify as the workspace owner (a human making a change)."""
    client = sim.owner_client()
    response = await client.request(method, f"/api/v1/workspaces/{sim.workspace.id}{path}", **kwargs)
    assert response.is_success, response.text
    return response


async def new_entry(sim: InProcessSimulator, **fields: Any) -> dict[str, Any]:
    body = {"start": "2025-06-01T08:00:00Z", "end": "2025-06-01T18:30:00Z", "description": "Deploy release 42",
            "billable": True, **fields}
    created: dict[str, Any] = (await owner_api(sim, "POST", "/time-entries", json=body)).json()
    return created
