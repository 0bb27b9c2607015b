"""The Free plan's 30 requests an hour: never exceeded in any hour, and spent by every caller."""

from __future__ import annotations

import asyncio

import pytest

import clockify_addon.app
import clockify_addon.settings
from clockify_core.config import RateLimitConfig
from clockify_core.errors import RateLimited
from clockify_core.installations.models import Installation
from clockify_core.installations.repository import installation_api
from clockify_core.ratelimit import InMemoryRateLimiter, default_limit, free_plan_limit
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import installed_addon
from tests.sync.conftest import SYNC


@pytest.mark.parametrize("per_hour", [30, 100, 7])
async def test_the_free_budget_holds_in_every_hour(per_hour: int) -> None:
    """Ask every second for five hours, clock injected: no hour-long span sees more than the budget."""
    config = RateLimitConfig(free_plan_per_hour=per_hour)
    now = [0.0]
    limiter = InMemoryRateLimiter(default_limit(config), clock=lambda: now[0])
    limit = free_plan_limit(config)
    granted: list[float] = []
    for second in range(5 * 3600):
        now[0] = float(second)
        if await limiter.try_acquire("addon:ws-free", limit=limit) == 0:
            granted.append(now[0])
    worst = max(sum(1 for t in granted if start <= t < start + 3600) for start in granted)
    assert worst <= per_hour
    first_hour = sum(1 for t in granted if t < 3600)
    assert per_hour - 1 <= first_hour <= per_hour  # the budget is used, not just respected
    assert len(granted) >= 5 * (per_hour - limit.burst)  # and it keeps refilling


async def test_every_caller_of_a_free_installation_gets_the_free_budget(
    simulator: InProcessSimulator, pg_url: str
) -> None:
    """The client of a Free-plan installation is limited whoever builds it (explorer, flows,
    refetch, sync): the workspace's one bucket is never drained at the paid rate."""
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url, sync=SYNC,
    ) as addon:
        await addon.process()
        async with addon.runtime.sessions.begin() as s:
            inst = await s.get(Installation, addon.workspace_id)
            assert inst is not None
        path = f"/v1/workspaces/{addon.workspace_id}/tags"
        # The bootstrap's paid bucket refills (50/s), as a paid call finds: a bucket refills at
        # the rate of whoever asks next, so it must be full before the Free limit asks.
        await asyncio.sleep(0.3)
        await installation_api(addon.runtime, inst).get_json(path, max_wait=0)
        inst.subscription_plan = "FREE"  # the Free limit then holds 3 of its tokens
        api = installation_api(addon.runtime, inst)
        for _ in range(free_plan_limit(addon.settings.rate_limit).burst):
            await api.get_json(path, max_wait=0)
        with pytest.raises(RateLimited):  # a second client of the same workspace: the same bucket
            await installation_api(addon.runtime, inst).get_json(path, max_wait=0)

        inst.subscription_plan = "PRO"
        paid = installation_api(addon.runtime, inst)
        await asyncio.sleep(0.3)
        for _ in range(addon.settings.rate_limit.burst):
            await paid.get_json(path, max_wait=0)
