"""A Free-plan pull never holds a job worker while its hourly quota refills (docs/sync.md, "Rate
limits and failures"; docs/scaling.md, "Fairness"): it defers, and the next claim goes on after
what the last one wrote, so a job needing more requests than the bucket holds completes over
several claims, reading no page twice.

Time is not waited for: a deferred job is made due by moving its ``run_after``, and the
limiter's buckets are emptied of state (``aclose``: full again, as after a quiet hour)."""

from __future__ import annotations

import asyncio
import math
from collections import Counter

import httpx
import pytest
from sqlalchemy import select, update

import clockify_addon.app
import clockify_addon.settings
from clockify_core.db.base import utcnow
from clockify_core.jobs.models import Job, JobKind, JobStatus
from clockify_core.jobs.worker import run_one
from clockify_core.ratelimit import free_plan_limit
from clockify_core.simulator.config import DataScale, RateLimitSettings, SimulatorConfig
from clockify_core.simulator.testing import InProcessSimulator, small_config
from clockify_core.sync.run import RESUME_REQUESTS
from clockify_core.testing.addon import ADDON_URL, AddonHarness, installed_addon
from tests.sync.conftest import (
    KEY_COLUMNS,
    OPERATOR_KEY,
    SYNC,
    Recorder,
    assert_same,
    expected,
    mirrored,
    record,
)

ENTRIES = 600
REPORT_PAGE = 50  # a year of entries is several report pages: more than the bucket's 3 requests
# Clockify's side never binds here: the add-on's own Free budget (30 an hour) paces every request.
SIM_FREE_PER_HOUR = 10_000
FREE = {**SYNC, "report_page_size": REPORT_PAGE}


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return small_config(scale=DataScale(workspaces=2, users=3, projects=6, time_entries=ENTRIES, years=3.0),
                        rate_limit=RateLimitSettings(free_per_hour=SIM_FREE_PER_HOUR))


async def jobs_of(addon: AddonHarness, workspace_id: str) -> dict[str, Job]:
    async with addon.runtime.sessions() as s:
        found = (await s.scalars(select(Job).where(Job.workspace_id == workspace_id).order_by(Job.id))).all()
    return {job.kind: job for job in found}


async def sim_429s(simulator: InProcessSimulator) -> int:
    response = await simulator.client().get("/__sim/stats")
    response.raise_for_status()
    return int(response.json()["counters"].get("http.429", 0))


async def run_to_done(addon: AddonHarness, workspace_id: str, kind: str) -> int:
    """Work the queue; while the job is deferred, let its budget refill and make it due. Returns
    the number of deferrals."""
    for deferrals in range(200):
        await addon.process()
        job = (await jobs_of(addon, workspace_id))[kind]
        if job.status == JobStatus.DONE:
            return deferrals
        assert job.status == JobStatus.QUEUED, (job.status, job.error)
        assert job.run_after > utcnow()
        assert job.attempts == 0
        assert "deferred" in job.progress
        await addon.runtime.limiter.aclose()
        async with addon.runtime.sessions.begin() as s:
            await s.execute(update(Job).where(Job.id == job.id).values(run_after=utcnow()))
    raise AssertionError(f"{kind} never completed")


def requests_of(recorder: Recorder, workspace_id: str) -> list[httpx.Request]:
    return [r for r in recorder.requests if f"/workspaces/{workspace_id}" in r.url.path]


async def test_a_free_bootstrap_defers_instead_of_holding_the_worker(simulator: InProcessSimulator,
                                                                      db_url: str) -> None:
    """One job loop (``run_one``), the default ``SYNC__MAX_RATE_WAIT_SECONDS``: the Free bootstrap
    spends its bucket and gives the loop back; the paid workspace's bootstrap, queued after it, runs."""
    free_ws, paid_ws = simulator.sim.workspaces.values()
    free_ws.plan = "free"
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=db_url, install=False,
        sync=FREE, worker={"job_concurrency": 1},
    ) as addon:
        await simulator.install(ADDON_URL, workspace_id=free_ws.id)
        await simulator.install(ADDON_URL, workspace_id=paid_ws.id)
        assert await run_one(addon.runtime, kinds=(JobKind.BOOTSTRAP,))  # the Free one: installed first
        free = (await jobs_of(addon, free_ws.id))[JobKind.BOOTSTRAP]
        assert free.status == JobStatus.QUEUED, (free.status, free.error)
        assert free.attempts == 0
        # Deferred until several requests' worth has refilled (a Free bucket's whole 3), not one.
        limit = free_plan_limit(addon.settings.rate_limit)
        assert (free.run_after - utcnow()).total_seconds() > (min(limit.burst, RESUME_REQUESTS) - 1) / limit.rate
        assert await run_one(addon.runtime, kinds=(JobKind.BOOTSTRAP,))
        assert (await jobs_of(addon, paid_ws.id))[JobKind.BOOTSTRAP].status == JobStatus.DONE
        assert (await jobs_of(addon, free_ws.id))[JobKind.BOOTSTRAP].status == JobStatus.QUEUED
        assert await sim_429s(simulator) == 0


async def test_a_free_bootstrap_and_sync_complete_over_deferrals_reading_nothing_twice(
    simulator: InProcessSimulator, db_url: str,
) -> None:
    free_ws, _ = simulator.sim.workspaces.values()
    free_ws.plan = "free"
    recorder = record(simulator)
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=db_url, install=False,
        sync=FREE, security={"operator_api_key": OPERATOR_KEY},
    ) as addon:
        await simulator.install(ADDON_URL, workspace_id=free_ws.id)
        deferrals = await run_to_done(addon, free_ws.id, JobKind.BOOTSTRAP)
        sent = requests_of(recorder, free_ws.id)
        assert deferrals >= 3
        reads = recorder.time_entry_reads()
        assert reads
        assert max(reads.values()) == 1, reads.most_common(3)  # no report page read twice
        # Every window is read once from its start, and a resumed one from where it stopped.
        assert len(reads) <= math.ceil(ENTRIES / REPORT_PAGE) + 4 + deferrals
        others = Counter((r.method, r.url.path, str(sorted(r.url.params.multi_items())), r.content) for r in sent
                         if not r.url.path.endswith("/reports/detailed"))
        assert max(others.values()) == 1, others.most_common(3)
        async with addon.runtime.sessions() as session:
            for kind in KEY_COLUMNS:
                assert_same(kind, await mirrored(session, free_ws.id, kind), expected(free_ws, kind))

        # Changes the webhooks never told, then a sync of everything (reference data too): more
        # requests than a bucket holds, so it is deferred and resumed, each step once.
        await simulator.sim.mount(ADDON_URL, httpx.MockTransport(lambda request: httpx.Response(503)))
        ws, ops = free_ws, simulator.sim.ops
        rows = list(ws.entries.by_start.rows)
        ops.patch_entry(ws, rows[-3], {"description": "edited while nobody listened"})
        ops.delete_entry(ws, rows[-5])
        recorder.requests.clear()
        r = await addon.client.post(f"/api/operator/workspaces/{free_ws.id}/sync", json={"reference": True},
                                    headers={"X-API-Key": OPERATOR_KEY})
        assert r.status_code == 202, r.text
        await addon.runtime.limiter.aclose()
        deferrals = await run_to_done(addon, free_ws.id, JobKind.SYNC)
        assert deferrals >= 2
        sent = requests_of(recorder, free_ws.id)
        repeated = Counter((r.method, r.url.path, str(sorted(r.url.params.multi_items())), r.content) for r in sent)
        assert max(repeated.values()) == 1, repeated.most_common(3)
        async with addon.runtime.sessions() as session:
            for kind in KEY_COLUMNS:
                assert_same(kind, await mirrored(session, free_ws.id, kind), expected(free_ws, kind))
        assert await sim_429s(simulator) == 0


async def test_a_clockify_429_asking_for_minutes_defers_the_pull_instead_of_sleeping(
    simulator: InProcessSimulator, db_url: str,
) -> None:
    """Clockify's own Free quota binds before ours (here 2 an hour against our 30): its 429
    asks for most of an hour. Neither the client's retries nor the page retry sleep that out in
    the job loop: the claim returns at once and the job waits in the queue for that long."""
    free_ws, _ = simulator.sim.workspaces.values()
    free_ws.plan = "free"
    simulator.sim.config.rate_limit.free_per_hour = 2
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=db_url, install=False,
        sync=FREE,
    ) as addon:
        await simulator.install(ADDON_URL, workspace_id=free_ws.id)
        assert await asyncio.wait_for(run_one(addon.runtime, kinds=(JobKind.BOOTSTRAP,)), timeout=60)
        job = (await jobs_of(addon, free_ws.id))[JobKind.BOOTSTRAP]
        assert job.status == JobStatus.QUEUED, (job.status, job.error)
        assert job.attempts == 0
        assert "429" in str(job.progress.get("deferred"))
        assert await sim_429s(simulator) == 1  # asked once, not retried into a storm
        # Deferred for at least what Clockify asked (the rest of its rolling hour).
        assert (job.run_after - utcnow()).total_seconds() > 1800


async def test_a_reference_listing_longer_than_the_bucket_resumes_at_its_next_page(
    simulator: InProcessSimulator, db_url: str,
) -> None:
    """Projects listed two a page take more requests than a Free bucket's 3: each claim goes on
    from the page the last one reached (restarting from page 1 would never finish), every page
    is asked for once, and the mirror ends equal to the simulator."""
    free_ws, _ = simulator.sim.workspaces.values()
    free_ws.plan = "free"
    recorder = record(simulator)
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=db_url, install=False,
        sync={**FREE, "page_size": 2},
    ) as addon:
        await simulator.install(ADDON_URL, workspace_id=free_ws.id)
        deferrals = await run_to_done(addon, free_ws.id, JobKind.BOOTSTRAP)
        assert deferrals >= 2
        sent = requests_of(recorder, free_ws.id)
        listed = Counter(r.url.params.get("page") for r in sent if r.url.path.endswith("/projects"))
        assert len(free_ws.projects) >= 6
        assert set(listed) >= {str(n) for n in range(1, math.ceil(len(free_ws.projects) / 2) + 1)}, listed
        assert max(listed.values()) == 1, listed
        async with addon.runtime.sessions() as session:
            for kind in KEY_COLUMNS:
                assert_same(kind, await mirrored(session, free_ws.id, kind), expected(free_ws, kind))
        assert await sim_429s(simulator) == 0
