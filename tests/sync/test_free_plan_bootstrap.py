"""A Free-plan workspace's bootstrap and history (docs/sync.md, "Free plan"): every request is
spent on the Free budget, the first one (which reads the plan) included, and time entries are
read in year-long reports, the widest Clockify lets a Free plan's report cover (the simulator
answers 400 to a longer one)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

import clockify_addon.app
import clockify_addon.settings
from clockify_core.installations.models import Installation
from clockify_core.jobs.models import Job, JobKind, JobStatus
from clockify_core.ratelimit import free_plan_limit
from clockify_core.simulator.config import DataScale, RateLimitSettings, SimulatorConfig
from clockify_core.simulator.testing import InProcessSimulator, small_config
from clockify_core.testing.addon import ADDON_URL, AddonHarness, installed_addon
from tests.sync.conftest import KEY_COLUMNS, SYNC, assert_same, expected, mirrored

# Clockify's own Free quota would bind first in the history test: raised there on both sides.
GENEROUS_PER_HOUR = 10_000


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return small_config(scale=DataScale(workspaces=2, users=3, projects=4, time_entries=600, years=3.0),
                        rate_limit=RateLimitSettings(free_per_hour=GENEROUS_PER_HOUR))


async def requests_of(simulator: InProcessSimulator, workspace_id: str) -> list[dict[str, Any]]:
    response = await simulator.client().get("/__sim/requests", params={"workspaceId": workspace_id})
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()["requests"]
    return found


async def jobs_of(addon: AddonHarness, workspace_id: str) -> dict[str, Job]:
    async with addon.runtime.sessions() as s:
        found = (await s.scalars(select(Job).where(Job.workspace_id == workspace_id))).all()
    return {job.kind: job for job in found}


async def test_the_free_bootstrap_spends_the_free_budget_from_its_first_request(
    simulator: InProcessSimulator, pg_url: str,
) -> None:
    """Before the first request the plan is unknown: that request (the workspace record) is taken from
    the Free bucket too, so a Free workspace sends exactly what the bucket holds (3 of 30 an hour)
    and goes back to the queue; a paid workspace installed beside it is bootstrapped at once."""
    free_ws, paid_ws = simulator.sim.workspaces.values()
    free_ws.plan = "free"
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url, install=False,
        sync={**SYNC, "max_rate_wait_seconds": 1.0},
    ) as addon:
        await simulator.install(ADDON_URL, workspace_id=free_ws.id)
        await simulator.install(ADDON_URL, workspace_id=paid_ws.id)
        await addon.process()

        assert (await jobs_of(addon, paid_ws.id))[JobKind.BOOTSTRAP].status == JobStatus.DONE
        bootstrap = (await jobs_of(addon, free_ws.id))[JobKind.BOOTSTRAP]
        assert bootstrap.status == JobStatus.QUEUED, bootstrap.error
        assert "deferred" in bootstrap.progress
        async with addon.runtime.sessions() as s:
            installation = await s.get(Installation, free_ws.id)
            assert installation is not None
            assert installation.subscription_plan == "FREE"
        sent = await requests_of(simulator, free_ws.id)
        assert len(sent) == free_plan_limit(addon.settings.rate_limit).burst
        assert sent[0]["path"].endswith(f"/v1/workspaces/{free_ws.id}")  # the plan is read first
        assert not any(r["throttled"] for r in sent)


async def test_a_free_history_is_read_a_year_per_report(simulator: InProcessSimulator, pg_url: str) -> None:
    """Ten years of bootstrap, then the history backfill with its two-year gap step: year windows
    (11 calendar years here, not 121 months), the gap read in spans of at most 366 days (a longer
    Free report is refused), and the mirror equals the simulator."""
    free_ws, _ = simulator.sim.workspaces.values()
    free_ws.plan = "free"
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url, install=False,
        sync={**SYNC, "backfill_window": "month", "history_backfill": True},
        rate_limit={"free_plan_per_hour": GENEROUS_PER_HOUR},
    ) as addon:
        await simulator.install(ADDON_URL, workspace_id=free_ws.id)
        await addon.process()

        jobs = await jobs_of(addon, free_ws.id)
        assert jobs[JobKind.BOOTSTRAP].status == JobStatus.DONE, jobs[JobKind.BOOTSTRAP].error
        backfill = jobs[JobKind.BACKFILL]
        assert backfill.status == JobStatus.DONE, backfill.error
        assert backfill.progress.get("history_complete") is True
        reports = [r for r in await requests_of(simulator, free_ws.id) if r["path"].endswith("/reports/detailed")]
        # Bootstrap: 11 year windows of 3650 days; history: a year, then the 24-month gap in 3 spans.
        assert len(reports) <= 11 + 1 + 3
        assert not any(r["throttled"] for r in reports)
        async with addon.runtime.sessions() as session:
            for kind in KEY_COLUMNS:
                assert_same(kind, await mirrored(session, free_ws.id, kind), expected(free_ws, kind))
