"""Webhook registration on the Free plan (docs/scaling.md, "Free-plan workspaces"): it spends
only the plan's budget, goes back to the queue when the budget is spent or Clockify answers
429 (never waiting in a job loop, never counted as a failed attempt), keeps what it
registered, and holds back no other workspace installed at the same time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

import clockify_addon.app
import clockify_addon.settings
from clockify_core.catalog import ALL_EVENTS
from clockify_core.db.base import utcnow
from clockify_core.installations.models import (
    Installation,
    SubscriptionSource,
    SubscriptionStatus,
    WebhookSubscription,
)
from clockify_core.jobs.models import Job, JobKind, JobStatus
from clockify_core.lifecycle.registration import FREE_PLAN_WEBHOOKS
from clockify_core.simulator.config import DataScale, RateLimitSettings, SimulatorConfig
from clockify_core.simulator.testing import InProcessSimulator, small_config
from clockify_core.testing.addon import ADDON_URL, AddonHarness, installed_addon

SYNC = {"bootstrap_days": 400, "backfill_window": "year", "history_backfill": False}
# The service's Free budget binds, not Clockify's: a bootstrap alone may cost Clockify's 30.
SIM_FREE_PER_HOUR = 100
# Free budget of 10 an hour: the limiter's bucket holds 1 (a tenth), then 1 every 400 s.
FREE_PER_HOUR = 10
BOOTSTRAP_PER_HOUR = 1000  # a bucket of 100: the whole Free bootstrap at once
MAX_ATTEMPTS = 2


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return small_config(scale=DataScale(workspaces=2, users=3, projects=4, time_entries=200, years=1.0),
                        rate_limit=RateLimitSettings(free_per_hour=SIM_FREE_PER_HOUR))


async def sim_stats(simulator: InProcessSimulator) -> dict[str, Any]:
    response = await simulator.client().get("/__sim/stats")
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


async def jobs_of(addon: AddonHarness, workspace_id: str) -> dict[str, Job]:
    async with addon.runtime.sessions() as s:
        found = (await s.scalars(select(Job).where(Job.workspace_id == workspace_id))).all()
    return {job.kind: job for job in found}


async def active_runtime_events(addon: AddonHarness, workspace_id: str) -> set[str]:
    async with addon.runtime.sessions() as s:
        return set((await s.scalars(select(WebhookSubscription.event_type).where(
            WebhookSubscription.workspace_id == workspace_id,
            WebhookSubscription.source == SubscriptionSource.RUNTIME,
            WebhookSubscription.status == SubscriptionStatus.ACTIVE,
        ))).all())


def clockify_hooks(simulator: InProcessSimulator, workspace_id: str) -> list[str]:
    return sorted(h["webhookEvent"] for h in simulator.sim.workspace(workspace_id).webhooks.values())


async def make_due(addon: AddonHarness, job_id: int) -> None:
    async with addon.runtime.sessions.begin() as s:
        await s.execute(update(Job).where(Job.id == job_id).values(run_after=utcnow()))


def assert_deferred(job: Job) -> None:
    """Back in the queue for later, no attempt spent: a defer is not a failure."""
    assert job.status == JobStatus.QUEUED, (job.status, job.error)
    assert job.run_after > utcnow() + timedelta(seconds=30), job.run_after
    assert job.attempts == 0
    assert "deferred" in job.progress


async def test_free_registration_defers_on_its_budget_while_a_paid_workspace_onboards(
    simulator: InProcessSimulator, db_url: str,
) -> None:
    free_ws, paid_ws = simulator.sim.workspaces.values()
    free_ws.plan = "free"
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=db_url, install=False,
        sync=SYNC, rate_limit={"free_plan_per_hour": FREE_PER_HOUR}, worker={"max_attempts": MAX_ATTEMPTS},
    ) as addon:
        # Installed at the same moment: both INSTALLED calls before any job runs.
        await simulator.install(ADDON_URL, workspace_id=free_ws.id)
        await simulator.install(ADDON_URL, workspace_id=paid_ws.id)
        await addon.process()

        # The paid workspace is onboarded completely meanwhile.
        paid_jobs = await jobs_of(addon, paid_ws.id)
        assert {kind: job.status for kind, job in paid_jobs.items()} == {
            JobKind.BOOTSTRAP: JobStatus.DONE, JobKind.REGISTER_WEBHOOKS: JobStatus.DONE,
        }
        assert len(clockify_hooks(simulator, paid_ws.id)) == len(ALL_EVENTS) - 10
        assert len(await active_runtime_events(addon, paid_ws.id)) == len(ALL_EVENTS) - 10

        # The Free workspace: the bootstrap's first request read the plan, on the Free budget (the plan
        # was not known yet), and spent the bucket's one request; the bootstrap went back to the queue.
        async with addon.runtime.sessions() as s:
            installation = await s.get(Installation, free_ws.id)
            assert installation is not None
            assert installation.subscription_plan == "FREE"
        free_jobs = await jobs_of(addon, free_ws.id)
        assert_deferred(free_jobs[JobKind.BOOTSTRAP])
        assert (await sim_stats(simulator))["requestsByWorkspace"][free_ws.id] == 1
        assert not await active_runtime_events(addon, free_ws.id)

        # An hour's budget large enough for the bootstrap (registration held back meanwhile), then the
        # bucket of one again: registration spends it and goes back to the queue.
        registration = free_jobs[JobKind.REGISTER_WEBHOOKS]
        async with addon.runtime.sessions.begin() as s:
            await s.execute(update(Job).where(Job.id == registration.id)
                            .values(run_after=utcnow() + timedelta(hours=1)))
        addon.runtime.settings.rate_limit.free_plan_per_hour = BOOTSTRAP_PER_HOUR
        await addon.runtime.limiter.aclose()
        await make_due(addon, free_jobs[JobKind.BOOTSTRAP].id)
        await addon.process()
        addon.runtime.settings.rate_limit.free_plan_per_hour = FREE_PER_HOUR
        await addon.runtime.limiter.aclose()
        await make_due(addon, registration.id)
        await addon.process()
        free_jobs = await jobs_of(addon, free_ws.id)
        assert free_jobs[JobKind.BOOTSTRAP].status == JobStatus.DONE
        registration = free_jobs[JobKind.REGISTER_WEBHOOKS]
        assert_deferred(registration)
        before = await active_runtime_events(addon, free_ws.id)
        assert len(before) <= 1  # what the bucket held after the bootstrap

        # A full bucket (one request) later: one more registered, deferred for the next.
        await addon.runtime.limiter.aclose()
        await make_due(addon, registration.id)
        await addon.process()
        registration = (await jobs_of(addon, free_ws.id))[JobKind.REGISTER_WEBHOOKS]
        assert_deferred(registration)
        first = await active_runtime_events(addon, free_ws.id)
        assert len(first) == len(before) + 1
        assert clockify_hooks(simulator, free_ws.id) == sorted(first)

        # Deferred again and again, more often than a job may fail: still queued, what it registered
        # is kept and not registered twice.
        for _ in range(MAX_ATTEMPTS + 1):
            await make_due(addon, registration.id)
            await addon.process()
            registration = (await jobs_of(addon, free_ws.id))[JobKind.REGISTER_WEBHOOKS]
            assert_deferred(registration)
        assert await active_runtime_events(addon, free_ws.id) == first
        assert clockify_hooks(simulator, free_ws.id) == sorted(first)

        stats = await sim_stats(simulator)
        assert stats["counters"].get("http.429", 0) == 0
        assert stats["requestsByWorkspace"][free_ws.id] <= stats["freeQuota"]["limit"]

        # With the budget back (a full bucket, as after a quiet hour), the rest of what the Free plan
        # keeps is registered, and no more: the scheduled syncs cover the other events.
        await addon.runtime.limiter.aclose()
        addon.runtime.settings.rate_limit.free_plan_per_hour = 30
        await make_due(addon, registration.id)
        await addon.process()
        registration = (await jobs_of(addon, free_ws.id))[JobKind.REGISTER_WEBHOOKS]
        assert registration.status == JobStatus.DONE, registration.error
        kept = await active_runtime_events(addon, free_ws.id)
        assert first < kept
        assert len(kept) == FREE_PLAN_WEBHOOKS
        assert registration.progress["left_to_sync"] == len(ALL_EVENTS) - 10 - FREE_PLAN_WEBHOOKS


async def test_a_429_defers_registration_after_one_call(simulator: InProcessSimulator, pg_url: str) -> None:
    """A workspace whose plan could not be read is registered at the paid rate; when Clockify answers
    429 asking for longer than the job may wait, the job goes back to the queue for the Retry-After
    at once: the client does not retry a 429 that asks for more than the request's rate wait."""
    free_ws, _ = simulator.sim.workspaces.values()
    free_ws.plan = "free"
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url, install=False,
        sync=SYNC,
    ) as addon:
        await simulator.install(ADDON_URL, workspace_id=free_ws.id)
        async with addon.runtime.sessions.begin() as s:
            # As if the workspace record was unreadable: the bootstrap learns no plan.
            await s.execute(update(Installation).where(Installation.workspace_id == free_ws.id)
                            .values(subscription_plan=None))
            await s.execute(update(Job).where(Job.workspace_id == free_ws.id, Job.kind == JobKind.BOOTSTRAP)
                            .values(status=JobStatus.CANCELLED))
        # The Free quota is spent but for two requests.
        spent = simulator.sim.config.rate_limit.free_per_hour - 2
        for _ in range(spent):
            assert simulator.sim.free_quota.try_acquire(free_ws.id, simulator.sim.config.rate_limit.free_per_hour) == 0
        await addon.process()

        registration = (await jobs_of(addon, free_ws.id))[JobKind.REGISTER_WEBHOOKS]
        assert_deferred(registration)
        assert len(await active_runtime_events(addon, free_ws.id)) == 2
        stats = await sim_stats(simulator)
        # One call was answered 429 once: not retried (Clockify asked for most of an hour), nothing after it.
        assert addon.settings.http.max_attempts > 1
        assert stats["counters"].get("http.429", 0) == 1
