"""Fairness across workspaces: claim order (priority, then round-robin, a cap per workspace)
and long jobs that give their worker back, so a big workspace never holds back a small one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import clockify_addon.app
import clockify_addon.settings
from clockify_addon.app import PROFILE
from clockify_core.client import WorkspaceApi
from clockify_core.db import create_engine, create_session_factory
from clockify_core.errors import RateLimited
from clockify_core.installations.models import Installation
from clockify_core.jobs import queue
from clockify_core.jobs.models import Job
from clockify_core.jobs.worker import run_one
from clockify_core.observability.metrics import Metrics
from clockify_core.ratelimit import InMemoryRateLimiter, Limit
from clockify_core.runtime import Runtime, open_runtime
from clockify_core.simulator.config import DataScale, FleetSettings, SimulatorConfig
from clockify_core.simulator.testing import InProcessSimulator, small_config
from clockify_core.sync import scheduler, state
from clockify_core.sync.models import WORKSPACE_KIND
from clockify_core.testing.addon import ADDON_URL, installed_addon
from clockify_core.webhooks.worker import process_batch
from tests.sync.conftest import SYNC, assert_same, expected, mirrored

LEASE = 60.0


@pytest.fixture
async def sessions(db_url: str) -> async_sessionmaker[AsyncSession]:
    engine = create_engine(db_url)
    factory = create_session_factory(engine)
    async with factory.begin() as s:
        for ws in ("ws-a", "ws-b", "ws-c"):
            s.add(Installation(workspace_id=ws, addon_id=f"addon-{ws}", status="ACTIVE"))
    yield factory
    await engine.dispose()


async def _enqueue(sessions: async_sessionmaker[AsyncSession], ws: str, kind: str) -> int:
    async with sessions.begin() as s:
        return await queue.enqueue(s, ws, kind, {"n": kind})


async def _claim(sessions: async_sessionmaker[AsyncSession], worker: str, cap: int = 1) -> tuple[str, str] | None:
    async with sessions.begin() as s:
        job = await queue.claim(s, worker_id=worker, kinds=("bootstrap", "sync", "backfill", "register_webhooks"),
                                lease_seconds=LEASE, workspace_concurrency=cap)
    return None if job is None else (job.workspace_id, job.kind)


async def _done(sessions: async_sessionmaker[AsyncSession], worker: str, ws: str, kind: str) -> None:
    async with sessions.begin() as s:
        job_id = await s.scalar(select(Job.id).where(Job.workspace_id == ws, Job.kind == kind,
                                                     Job.status == "RUNNING"))
        assert job_id is not None
        assert await queue.complete(s, job_id, worker_id=worker)


async def test_claims_follow_priority_then_round_robin_with_one_job_per_workspace(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Two workers: bootstraps before syncs before backfills, never two jobs of one workspace at
    once, and a job that gives its worker back waits behind the others due before."""
    await _enqueue(sessions, "ws-a", "backfill")  # due first, claimed last
    await _enqueue(sessions, "ws-a", "bootstrap")
    await _enqueue(sessions, "ws-a", "sync")
    await _enqueue(sessions, "ws-b", "bootstrap")
    await _enqueue(sessions, "ws-c", "sync")
    await _enqueue(sessions, "ws-b", "sync")

    assert await _claim(sessions, "w1") == ("ws-a", "bootstrap")
    # ws-a runs a job already: its sync waits although it is due before ws-b's bootstrap would be.
    assert await _claim(sessions, "w2") == ("ws-b", "bootstrap")
    assert await _claim(sessions, "w1") == ("ws-c", "sync")
    assert await _claim(sessions, "w2") is None  # every workspace with due work is busy
    # w1's slice of ws-a's bootstrap ends: back to the queue, behind every job due before it.
    async with sessions.begin() as s:
        boot_a = await s.scalar(select(Job.id).where(Job.workspace_id == "ws-a", Job.kind == "bootstrap"))
        assert boot_a is not None
        assert await queue.requeue(s, boot_a, worker_id="w1")
    await _done(sessions, "w2", "ws-b", "bootstrap")
    await _done(sessions, "w1", "ws-c", "sync")
    # The next bootstrap slice of ws-a outranks every sync; then the due syncs, oldest first.
    assert await _claim(sessions, "w1") == ("ws-a", "bootstrap")
    assert await _claim(sessions, "w2") == ("ws-b", "sync")
    await _done(sessions, "w1", "ws-a", "bootstrap")
    assert await _claim(sessions, "w1") == ("ws-a", "sync")
    await _done(sessions, "w1", "ws-a", "sync")
    await _done(sessions, "w2", "ws-b", "sync")
    assert await _claim(sessions, "w2") == ("ws-a", "backfill")
    async with sessions() as s:
        attempts = dict((await s.execute(select(Job.kind, Job.attempts).where(Job.workspace_id == "ws-a"))).all())
    assert attempts["bootstrap"] == 1  # a slice given back costs no attempt


async def test_a_burst_of_installs_is_onboarded_in_install_order(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Registration ranks with the first bootstrap: one worker gives the first workspace its
    webhooks and then its data before it starts on the next install's registration."""
    for ws in ("ws-a", "ws-b", "ws-c"):
        await _enqueue(sessions, ws, "register_webhooks")
        await _enqueue(sessions, ws, "bootstrap")
    order = []
    while (claimed := await _claim(sessions, "w1")) is not None:
        order.append(claimed)
        await _done(sessions, "w1", *claimed)
    assert order == [(ws, kind) for ws in ("ws-a", "ws-b", "ws-c") for kind in ("register_webhooks", "bootstrap")]


async def test_workspace_concurrency_allows_that_many_jobs_of_one_workspace(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _enqueue(sessions, "ws-a", "bootstrap")
    await _enqueue(sessions, "ws-a", "sync")
    await _enqueue(sessions, "ws-a", "backfill")
    assert await _claim(sessions, "w1", cap=2) == ("ws-a", "bootstrap")
    assert await _claim(sessions, "w2", cap=2) == ("ws-a", "sync")
    assert await _claim(sessions, "w3", cap=2) is None
    assert await _claim(sessions, "w3", cap=3) == ("ws-a", "backfill")


def _fleet() -> SimulatorConfig:
    # The first workspace has the full scale (a few thousand entries), the second is small.
    return small_config(
        anchor=datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0),
        scale=DataScale(workspaces=2, users=4, projects=6, time_entries=3000, years=1.0, running_timers=1,
                        user_groups=1, clients=2, tags=3),
        fleet=FleetSettings(small_max_entries=100, small_min_entries=100, large_fraction=0.5, free_fraction=0),
    )


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return _fleet()


async def test_small_workspace_bootstraps_while_a_big_one_is_still_bootstrapping(
    simulator: InProcessSimulator, pg_url: str
) -> None:
    """Installed after a big workspace's bootstrap began, a small one is mirrored before it ends.

    Without slices the big bootstrap would hold the only worker to its end (the order here is
    what one worker loop does; no timing is involved).
    """
    big_id, small_id = list(simulator.sim.workspaces)
    # Weekly windows over a year; a slice ends after the window that brings it to 150 rows: the
    # big workspace's bootstrap takes many slices, the small one's (100 entries) a single one.
    sync = {**SYNC, "bootstrap_days": 400, "backfill_window": "week", "slice_seconds": 3600, "slice_rows": 150,
            "window_concurrency": 1}
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url, install=False,
        sync=sync,
    ) as addon:
        await simulator.sim.marketplace.install(ADDON_URL, workspace_id=big_id)
        await simulator.drain()
        await process_batch(addon.runtime)

        async def status(ws: str) -> str:
            async with addon.runtime.sessions() as s:
                job = await s.scalar(select(Job).where(Job.workspace_id == ws, Job.kind == "bootstrap"))
            assert job is not None
            return job.status

        async def step() -> bool:
            await simulator.drain()
            busy = await process_batch(addon.runtime)
            return bool(busy + await run_one(addon.runtime))

        for _ in range(4):  # the big bootstrap is under way
            await step()
        assert await status(big_id) in ("QUEUED", "RUNNING")
        await simulator.sim.marketplace.install(ADDON_URL, workspace_id=small_id)
        while await status(small_id) != "DONE":
            assert await step()
        # The small workspace is complete while the big one still has windows to go.
        assert await status(big_id) != "DONE"
        async with addon.runtime.sessions() as s:
            big_job = await s.scalar(select(Job).where(Job.workspace_id == big_id, Job.kind == "bootstrap"))
            small_ws = simulator.sim.workspace(small_id)
            assert_same("time_entry", await mirrored(s, small_id, "time_entry"), expected(small_ws, "time_entry"))
        assert big_job is not None
        assert big_job.progress["slices"] >= 4
        assert big_job.attempts <= 1  # slices are not failures

        while await step():
            pass
        big_ws = simulator.sim.workspace(big_id)
        async with addon.runtime.sessions() as s:
            assert_same("time_entry", await mirrored(s, big_id, "time_entry"), expected(big_ws, "time_entry"))
        assert await status(big_id) == "DONE"


async def test_scheduler_reads_installations_a_page_at_a_time(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Flat in N: a tick reads due installations in pages and schedules each due one once;
    those not due (ahead, parked, already syncing) are skipped on every page."""
    monkeypatch.setattr(scheduler, "PAGE", 3)
    settings = clockify_addon.settings.Settings(database={"url": db_url, "run_migrations": False})
    async with open_runtime(settings, PROFILE, Metrics()) as runtime:
        now = datetime.now(UTC)
        names = [f"ws-{i:02d}" for i in range(11)]
        async with runtime.sessions.begin() as s:
            for ws in names:
                s.add(Installation(workspace_id=ws, addon_id=f"addon-{ws}", status="ACTIVE"))
            await s.flush()
            await state.set_fields(s, "ws-01", WORKSPACE_KIND, next_run_at=now + timedelta(hours=1))
            await state.set_fields(s, "ws-04", WORKSPACE_KIND, parked_until=now + timedelta(hours=1))
            await state.set_fields(s, "ws-07", WORKSPACE_KIND, next_run_at=now - timedelta(minutes=1))
            await queue.enqueue(s, "ws-09", "bootstrap")
        scheduled = await scheduler.tick(runtime, now=now)
        assert scheduled == [ws for ws in names if ws not in ("ws-01", "ws-04", "ws-09")]
        assert await scheduler.tick(runtime, now=now) == []  # each has its next run ahead now


def test_in_process_limiter_keeps_at_most_max_keys_buckets() -> None:
    """Flat in N: however many workspaces call, the limiter holds ``max_keys`` buckets, and the
    ones in use (least recently used go first) keep their state."""
    clock = [0.0]
    limiter = InMemoryRateLimiter(Limit(rate=1.0, burst=2), clock=lambda: clock[0], max_keys=50)

    async def run() -> None:
        for _ in range(2):
            assert await limiter.try_acquire("hot") == 0
        for i in range(1000):
            await limiter.try_acquire(f"addon:ws-{i}")
            assert len(limiter) <= 50
            assert await limiter.try_acquire("hot") > 0  # still drained: its bucket was kept

    asyncio.run(run())
    assert len(limiter) == 50


async def test_global_outbound_cap_is_shared_by_workspaces_and_instances(
    pg_url: str, redis_server_url: str, redis_prefix: str
) -> None:
    """``RATE_LIMIT__GLOBAL_PER_SECOND``: two instances (sharing Redis) calling for three
    workspaces share one bucket, although each workspace's own budget has room."""
    settings = clockify_addon.settings.Settings(
        database={"url": pg_url, "run_migrations": False}, redis={"url": redis_server_url, "key_prefix": redis_prefix},
        rate_limit={"global_per_second": 0.001},  # a bucket of one token, refilled in 1000 s
        http={"allowed_api_hosts": ["api.clockify.test"]},
    )
    sent: list[str] = []

    def clockify(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(200, json=[])

    transport = httpx.MockTransport(clockify)
    async with (open_runtime(settings, PROFILE, Metrics(), clockify_transport=transport) as a,
                open_runtime(settings, PROFILE, Metrics(), clockify_transport=transport) as b):
        def api(runtime: Runtime, ws: str) -> WorkspaceApi:
            return runtime.clockify.for_workspace(ws, "token", backend_url="https://api.clockify.test/api",
                                                  addon_key="addon")

        assert await api(a, "ws-1").get_json("/v1/workspaces/ws-1/tags", max_wait=0) == []
        for runtime, ws in ((b, "ws-2"), (a, "ws-3")):
            with pytest.raises(RateLimited):
                await api(runtime, ws).get_json(f"/v1/workspaces/{ws}/tags", max_wait=0)
    assert sent == ["/api/v1/workspaces/ws-1/tags"]


async def test_concurrent_claims_of_one_workspace_respect_the_cap(pg_url: str) -> None:
    """Two instances claiming at the same moment: the second sees the first's claim (not yet
    committed when it chose its candidate) and leaves the workspace alone."""
    engine = create_engine(pg_url)
    sessions = create_session_factory(engine)
    try:
        async with sessions.begin() as s:
            s.add(Installation(workspace_id="ws-a", addon_id="addon-ws-a", status="ACTIVE"))
        await _enqueue(sessions, "ws-a", "bootstrap")
        await _enqueue(sessions, "ws-a", "sync")
        async with sessions.begin() as first:  # commits at the end of the block
            taken = await queue.claim(first, worker_id="w1", kinds=("bootstrap", "sync"), lease_seconds=LEASE)
            assert taken is not None
            assert taken.kind == "bootstrap"
            second = asyncio.create_task(_claim(sessions, "w2"))
            # The second claim picked ws-a's sync and waits for the workspace's claim lock.
            while True:
                async with sessions() as s:
                    waiting = await s.scalar(text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"))
                if waiting or second.done():
                    break
                await asyncio.sleep(0.01)
        assert await second is None
        assert await _claim(sessions, "w2", cap=2) == ("ws-a", "sync")
    finally:
        await engine.dispose()
