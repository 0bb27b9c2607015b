"""A mirror of two simulated workspaces (two currencies, rates at every level) on PostgreSQL.

The views are compared with the simulator's own Summary and Detailed reports, which
compute totals and amounts from the simulator's data (simulator/rates.py), not from SQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text

import clockify_addon.app
import clockify_addon.settings
from clockify_core.simulator.config import DataScale, SimulatorConfig
from clockify_core.simulator.model import Workspace
from clockify_core.simulator.testing import InProcessSimulator, in_process_simulator, small_config
from clockify_core.testing.addon import ADDON_URL, AddonHarness, installed_addon
from clockify_core.testing.databases import create_database, drop_database
from tests.sync.conftest import SYNC

# Tests that only read the shared mirror run on the loop it lives on.
in_shared_loop = pytest.mark.asyncio(loop_scope="session")


def reporting_config() -> SimulatorConfig:
    return small_config(scale=DataScale(workspaces=2, users=6, projects=8, max_tasks_per_project=4, time_entries=900,
                                        years=1.0, running_timers=2, clients=4, tags=6, user_groups=1, expenses=0,
                                        invoices=0, time_off_requests=0, approval_requests=0, assignments=0))


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return reporting_config()


@dataclass
class Mirror:
    sim: InProcessSimulator
    addon: AddonHarness
    workspaces: list[Workspace]
    db_url: str

    async def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        async with self.addon.runtime.engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(text(sql), params)).mappings()]

    async def execute(self, sql: str, **params: Any) -> None:
        async with self.addon.runtime.engine.begin() as conn:
            await conn.execute(text(sql), params)

    async def report(self, ws: Workspace, kind: str, since: datetime, until: datetime, **body: Any) -> dict[str, Any]:
        """Clockify's ``kind`` report (summary, detailed) of ``[since, until)``, as the workspace owner."""
        client = self.sim.owner_client(ws)
        payload = {"dateRangeStart": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "dateRangeEnd": (until - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ"), **body}
        response = await client.post(f"/reports/v1/workspaces/{ws.id}/reports/{kind}", json=payload)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data


@asynccontextmanager
async def bootstrapped(simulator: InProcessSimulator, db_url: str) -> AsyncIterator[Mirror]:
    """Both workspaces bootstrapped into one PostgreSQL mirror by the reference add-on."""
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=db_url, sync=SYNC,
    ) as addon:
        others = [ws for ws in simulator.sim.workspaces.values() if ws.id != addon.workspace_id]
        for ws in others:
            await simulator.install(ADDON_URL, workspace_id=ws.id)
        await addon.process()
        yield Mirror(simulator, addon, [simulator.sim.workspace(addon.workspace_id), *others], db_url)


@pytest.fixture
async def mirror(simulator: InProcessSimulator, pg_url: str) -> AsyncIterator[Mirror]:
    """A mirror of its own, for tests that change it."""
    async with bootstrapped(simulator, pg_url) as built:
        yield built


@pytest.fixture(scope="session")
def shared_database(postgres_server_url: str, postgres_template: str) -> Iterator[str]:
    url = asyncio.run(create_database(postgres_server_url, template=postgres_template))
    yield url
    asyncio.run(drop_database(url))


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def shared_mirror(shared_database: str) -> AsyncIterator[Mirror]:
    """One mirror for every test that only reads it (mark those tests ``in_shared_loop``)."""
    async with in_process_simulator(reporting_config()) as simulator, bootstrapped(simulator, shared_database) as built:
        yield built
