"""The scheduler: one leader across instances, each sync queued once, Free plans slower, parking."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from asgi_lifespan import LifespanManager
from sqlalchemy import func, select, update

import clockify_addon.app
import clockify_addon.settings
from clockify_addon.app import PROFILE
from clockify_core.installations.models import Installation
from clockify_core.jobs.models import Job, JobStatus
from clockify_core.jobs.worker import run_one
from clockify_core.leases import SchedulerLease, database_now
from clockify_core.observability.metrics import Metrics
from clockify_core.runtime import Runtime, open_runtime
from clockify_core.simulator.config import RateLimitSettings
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.sync import scheduler
from clockify_core.sync.models import WORKSPACE_KIND, SyncState
from clockify_core.testing.addon import ADDON_URL, AddonHarness, installed_addon
from tests.sync.conftest import SYNC

OPERATOR_KEY = "operator-key-for-tests-0123456789"


@asynccontextmanager
async def two_instances(simulator: InProcessSimulator, db_url: str, **overrides: object) -> AsyncIterator[tuple[AddonHarness, Runtime]]:
    """The add-on installed on both simulated workspaces, and a second instance on the same database."""
    settings = {"sync": {**SYNC, "lease_seconds": 30.0}, "security": {"operator_api_key": OPERATOR_KEY}, **overrides}
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=db_url, **settings,
    ) as addon:
        other = next(ws for ws in simulator.sim.workspaces if ws != addon.workspace_id)
        await simulator.install(ADDON_URL, workspace_id=other)
        await addon.process()
        second = clockify_addon.app.create_app(addon.settings, clockify_transport=simulator.transport, configure_logs=False)
        async with LifespanManager(second):
            yield addon, second.state.runtime


async def sync_jobs(runtime: Runtime) -> dict[str, int]:
    async with runtime.sessions() as s:
        rows = (await s.execute(select(Job.workspace_id, func.count()).where(Job.kind == "sync").group_by(Job.workspace_id))).all()
    return {ws: int(n) for ws, n in rows}


async def expire_lease(runtime: Runtime) -> None:
    """The scheduler lease runs out on the database's clock (moved there rather than waited for)."""
    async with runtime.sessions.begin() as s:
        expired = await database_now(s) - timedelta(seconds=1)
        await s.execute(update(SchedulerLease).where(SchedulerLease.name == scheduler.LEASE).values(expires_at=expired))


async def test_two_instances_schedule_each_sync_once(simulator: InProcessSimulator, pg_url: str) -> None:
    async with two_instances(simulator, pg_url, sync={**SYNC, "lease_seconds": 30.0}) as (addon, runtime_b):
        runtime_a = addon.runtime
        assert runtime_a.instance_id != runtime_b.instance_id
        start = datetime.now(UTC)
        leaders = []
        # An hour of ticks every 5 minutes, both instances at once; any instance runs the jobs.
        for step in range(13):
            now = start + timedelta(minutes=5 * step, seconds=1)
            a, b = await asyncio.gather(scheduler.tick(runtime_a, now=now), scheduler.tick(runtime_b, now=now))
            assert (a is None) != (b is None), (a, b)  # exactly one of them leads
            leaders.append("a" if a is not None else "b")
            while await run_one(runtime_b if step % 2 else runtime_a):
                pass
        counts = await sync_jobs(runtime_a)
        # Bootstrap set the first run 15 minutes out: 15, 30, 45 and 60 minutes.
        assert counts == dict.fromkeys(simulator.sim.workspaces, 4), counts

        # The leader dies without releasing; the other takes over once the lease has run out.
        last = start + timedelta(minutes=60, seconds=1)
        leader = await scheduler.tick(runtime_a, now=last)
        leader_rt, follower = (runtime_a, runtime_b) if leader is not None else (runtime_b, runtime_a)
        assert await scheduler.tick(leader_rt, now=last) == []  # renews; nothing due yet
        assert await scheduler.tick(follower, now=last + timedelta(seconds=10)) is None
        await expire_lease(follower)
        assert await scheduler.tick(follower, now=last + timedelta(seconds=11)) == []  # leads; nothing due yet
        async with follower.sessions() as s:
            held = await s.get(SchedulerLease, scheduler.LEASE)
        assert held is not None
        assert held.holder == follower.instance_id
        scheduled = await scheduler.tick(follower, now=start + timedelta(minutes=76))
        assert sorted(scheduled or []) == sorted(simulator.sim.workspaces)
        async with runtime_a.sessions() as s:
            done = await s.scalar(select(func.count()).select_from(Job).where(Job.kind == "sync", Job.status == "DONE"))
        assert done == 8


async def test_skewed_instance_clocks_never_share_the_lease(db_url: str) -> None:
    """Expiry is judged on the database's clock: an instance an hour ahead cannot steal a
    live lease, and one an hour behind cannot keep a lease that has run out."""
    settings = clockify_addon.settings.Settings(database={"url": db_url, "run_migrations": False},
                                                sync={"lease_seconds": 30.0})
    async with (open_runtime(settings, PROFILE, Metrics()) as a, open_runtime(settings, PROFILE, Metrics()) as b):
        real = datetime.now(UTC)
        assert await scheduler.tick(a, now=real) == []
        assert await scheduler.tick(b, now=real + timedelta(hours=1)) is None
        assert await scheduler.tick(b, now=real + timedelta(days=1)) is None
        assert await scheduler.tick(a, now=real - timedelta(hours=1)) == []  # the holder renews, clock or not
        async with a.sessions() as s:
            lease = await s.get(SchedulerLease, scheduler.LEASE)
            db_now = await database_now(s)
        assert lease is not None
        assert lease.holder == a.instance_id
        # Stamped on the database's clock: on a's skewed "now" it would have expired an hour ago.
        assert timedelta(0) < lease.expires_at - db_now <= timedelta(seconds=30)
        await expire_lease(a)
        # a's clock is an hour behind and still thinks it leads; the database says the lease ran out.
        assert await scheduler.tick(b, now=real - timedelta(hours=1)) == []
        assert await scheduler.tick(a, now=real - timedelta(hours=1)) is None


async def test_running_loops_elect_one_leader_and_queue_once(simulator: InProcessSimulator, pg_url: str) -> None:
    async with two_instances(simulator, pg_url, sync={**SYNC, "tick_seconds": 0.05}) as (addon, runtime_b):
        runtime_a = addon.runtime
        async with runtime_a.sessions.begin() as s:  # both workspaces due now
            await s.execute(update(SyncState).where(SyncState.kind == WORKSPACE_KIND).values(next_run_at=None))
        runtime_a.start("scheduler-a", scheduler.scheduler_loop)
        runtime_b.start("scheduler-b", scheduler.scheduler_loop)
        await asyncio.sleep(1.0)
        async with runtime_a.sessions() as s:
            lease = await s.get(SchedulerLease, scheduler.LEASE)
        assert lease is not None
        assert lease.holder in (runtime_a.instance_id, runtime_b.instance_id)
        leader_metrics = [r.metrics.registry.get_sample_value("sync_scheduler_leader") for r in (runtime_a, runtime_b)]
        assert sorted(leader_metrics) == [0.0, 1.0]
        assert await sync_jobs(runtime_a) == dict.fromkeys(simulator.sim.workspaces, 1)
        for runtime in (runtime_a, runtime_b):
            await runtime.shutdown()
        async with runtime_a.sessions() as s:
            lease = await s.get(SchedulerLease, scheduler.LEASE, populate_existing=True)
        assert lease is not None
        assert lease.expires_at < datetime.now(UTC)  # released on shutdown: the next instance leads at once


async def test_free_plan_schedule_and_budget(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url,
        sync={**SYNC, "max_rate_wait_seconds": 1.0}, security={"operator_api_key": OPERATOR_KEY},
    ) as addon:
        await addon.process()
        runtime = addon.runtime
        async with runtime.sessions.begin() as s:
            inst = await s.get(Installation, addon.workspace_id)
            assert inst is not None
            inst.subscription_plan = "FREE"
        now = datetime.now(UTC)
        assert scheduler.next_run(runtime.settings.sync, inst, now) == now + timedelta(minutes=120)
        inst.settings = [{**item, "value": 240} if item["id"] == "sync_interval_minutes" else item
                         for item in inst.settings]
        assert scheduler.next_run(runtime.settings.sync, inst, now) == now + timedelta(minutes=240)
        inst.settings = [{"id": "sync_enabled", "name": "x", "value": False}]
        assert scheduler.next_run(runtime.settings.sync, inst, now) is None

        # Clockify's Free budget is 30 an hour; the add-on's limiter spends the same, never more.
        simulator.sim.config.rate_limit = RateLimitSettings(plan="free")
        await simulator.sim.limiter.aclose()
        r = await addon.client.post(f"/api/operator/workspaces/{addon.workspace_id}/sync", json={"reference": True},
                                    headers={"X-API-Key": OPERATOR_KEY})
        job_id = r.json()["job_id"]
        await addon.process()
        async with runtime.sessions() as s:
            job = await s.get(Job, job_id)
        assert job is not None
        # The Free bucket (3 at once, one per 120 s) ran dry after a few requests: the job waits its turn.
        assert job.status == JobStatus.QUEUED
        assert job.attempts == 0
        assert "deferred" in job.progress
        assert job.run_after > datetime.now(UTC) + timedelta(seconds=10)  # when a token will be back
        assert simulator.sim.stats["http.429"] == 0


async def test_a_failing_workspace_is_parked_and_others_sync(simulator: InProcessSimulator, pg_url: str) -> None:
    async with two_instances(
        simulator, pg_url, sync={**SYNC, "park_after_failures": 3},
        worker={"enabled": False, "backoff_base": 0.01, "backoff_max": 0.02},
    ) as (addon, _):
        runtime = addon.runtime
        broken = addon.workspace_id
        healthy = next(ws for ws in simulator.sim.workspaces if ws != broken)
        async with runtime.sessions.begin() as s:
            inst = await s.get(Installation, broken)
            assert inst is not None
            inst.auth_token_encrypted = runtime.cipher.encrypt("revoked-token")  # Clockify now answers 401
            await s.execute(update(SyncState).where(SyncState.kind == WORKSPACE_KIND).values(next_run_at=None))
        assert sorted(await scheduler.tick(runtime) or []) == sorted([broken, healthy])
        for _ in range(50):
            await addon.process()
            async with runtime.sessions() as s:
                statuses = dict((await s.execute(select(Job.workspace_id, Job.status).where(Job.kind == "sync"))).all())
            if statuses.get(broken) == "FAILED":
                break
            await asyncio.sleep(0.03)
        assert statuses == {broken: "FAILED", healthy: "DONE"}
        r = await addon.client.get(f"/api/operator/workspaces/{broken}/sync-state", headers={"X-API-Key": OPERATOR_KEY})
        parked = r.json()
        assert parked["consecutive_failures"] == 3
        assert "401" in parked["parked_reason"]
        assert datetime.fromisoformat(parked["parked_until"]) > datetime.now(UTC) + timedelta(minutes=50)

        # Next rounds skip the parked workspace and keep serving the other.
        async with runtime.sessions.begin() as s:
            await s.execute(update(SyncState).where(SyncState.kind == WORKSPACE_KIND).values(next_run_at=None))
        assert await scheduler.tick(runtime) == [healthy]
        r = await addon.client.post(f"/api/operator/workspaces/{broken}/unpark", headers={"X-API-Key": OPERATOR_KEY})
        assert r.json()["parked_until"] is None
        assert await scheduler.tick(runtime, now=datetime.now(UTC) + timedelta(seconds=1)) == [broken]
