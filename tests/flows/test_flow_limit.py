"""FLOWS__MAX_FLOWS_PER_WORKSPACE holds when creates race: the database serialises them."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

import api_studio.app
import api_studio.settings
from clockify_core.flows.models import Flow
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import installed_addon
from tests.flows.conftest import admin

LIMIT = 5
CONCURRENT = 30


async def test_concurrent_creates_never_exceed_the_limit(simulator: InProcessSimulator, db_url: str) -> None:
    async with installed_addon(
        simulator, api_studio.app.create_app, api_studio.settings.Settings, db_url=db_url,
        flows={"max_flows_per_workspace": LIMIT},
    ) as addon:
        headers = admin(addon)
        body = {"trigger": {"events": ["NEW_TIME_ENTRY"]}, "actions": [{"type": "stop", "reason": "enough"}]}
        responses = await asyncio.gather(*(
            addon.client.post("/api/flows", json={**body, "name": f"flow {i}"}, headers=headers)
            for i in range(CONCURRENT)
        ))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] * LIMIT + [409] * (CONCURRENT - LIMIT), [r.text for r in responses if r.status_code >= 500]
        for refused in (r for r in responses if r.status_code == 409):
            assert refused.headers["content-type"] == "application/problem+json"
            assert "FLOWS__MAX_FLOWS_PER_WORKSPACE" in refused.json()["detail"]
        async with addon.runtime.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Flow)) == LIMIT
        listed = (await addon.client.get("/api/flows", headers=headers)).json()
        assert sorted(f["name"] for f in listed) == sorted(r.json()["name"] for r in responses if r.status_code == 201)

        # Deleting one frees one slot, and only one.
        await addon.client.delete(f"/api/flows/{listed[0]['id']}", headers=headers)
        again = await asyncio.gather(*(
            addon.client.post("/api/flows", json={**body, "name": f"again {i}"}, headers=headers) for i in range(4)
        ))
        assert sorted(r.status_code for r in again) == [201, 409, 409, 409]
