"""Under injected 5xx and 429 storms, bootstrap and sync still finish with the right mirror."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import select, text

import clockify_addon.app
import clockify_addon.settings
from clockify_core.jobs import queue as job_queue
from clockify_core.jobs.models import Job
from clockify_core.simulator.config import FaultSettings, RateLimitSettings
from clockify_core.simulator.render import iso
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.sync.models import WORKSPACE_KIND, SyncState
from clockify_core.testing.addon import AddonHarness, installed_addon
from tests.sync.conftest import KEY_COLUMNS, SYNC, assert_same, expected, mirrored

OPERATOR_KEY = "operator-key-for-tests-0123456789"


async def queue(addon: AddonHarness, what: str, **body: object) -> int:
    r = await addon.client.post(f"/api/operator/workspaces/{addon.workspace_id}/{what}", json=body,
                                headers={"X-API-Key": OPERATOR_KEY})
    assert r.status_code == 202, r.text
    return int(r.json()["job_id"])


async def finished(addon: AddonHarness, job_id: int) -> Job:
    await addon.process(rounds=400)
    async with addon.runtime.sessions() as s:
        job = await s.get(Job, job_id)
    assert job is not None
    assert (job.status, job.attempts) == ("DONE", 1), job.error
    return job


async def edit_some(simulator: InProcessSimulator, workspace_id: str) -> None:
    ws = simulator.sim.workspace(workspace_id)
    ops, rows = simulator.sim.ops, list(ws.entries.by_start.rows)
    ops.patch_entry(ws, rows[7], {"description": "changed under fire"})
    ops.delete_entry(ws, rows[70])
    now = int(datetime.now(UTC).timestamp())
    ops.create_entry(ws, list(ws.users)[1], {"start": iso(now - 4000), "end": iso(now - 1000)})


async def assert_mirror(addon: AddonHarness, simulator: InProcessSimulator) -> None:
    ws = simulator.sim.workspace(addon.workspace_id)
    async with addon.runtime.sessions() as s:
        for kind in KEY_COLUMNS:
            assert_same(kind, await mirrored(s, ws.id, kind), expected(ws, kind))


async def test_twenty_percent_server_errors(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url,
        sync={**SYNC, "backfill_window": "month"}, security={"operator_api_key": OPERATOR_KEY},
    ) as addon:
        await addon.process()
        simulator.sim.faults.configure(FaultSettings(error_rate=0.2, seed=3))
        boot = await finished(addon, await queue(addon, "bootstrap"))
        await edit_some(simulator, addon.workspace_id)
        sync = await finished(addon, await queue(addon, "sync", reference=True))
        assert simulator.sim.faults.counts["error"] > 20
        assert boot.progress.get("errors", 0) + sync.progress.get("errors", 0) > 0  # pages were retried, and counted
        simulator.sim.faults.configure(FaultSettings())
        await assert_mirror(addon, simulator)


async def test_429_storm(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url,
        sync=SYNC, security={"operator_api_key": OPERATOR_KEY},
    ) as addon:
        await addon.process()
        # Clockify suddenly allows a tenth of what the add-on's own limiter spends.
        simulator.sim.config.rate_limit = RateLimitSettings(rate=5.0, burst=3)
        await simulator.sim.limiter.aclose()
        await edit_some(simulator, addon.workspace_id)
        await finished(addon, await queue(addon, "bootstrap"))
        await finished(addon, await queue(addon, "sync", reference=True))
        assert simulator.sim.stats["http.429"] > 20
        simulator.sim.config.rate_limit = RateLimitSettings()
        await assert_mirror(addon, simulator)
        async with addon.runtime.sessions() as s:
            failed = (await s.execute(select(Job).where(Job.status != "DONE"))).scalars().all()
        assert not failed


async def settled(addon: AddonHarness, job_id: int) -> Job:
    """Run jobs (retries included, their backoff is short) until ``job_id`` is DONE or FAILED."""
    for _ in range(100):
        await addon.process()
        async with addon.runtime.sessions() as s:
            job = await s.get(Job, job_id)
        assert job is not None
        if job.status in ("DONE", "FAILED"):
            return job
        await asyncio.sleep(0.03)
    raise AssertionError(f"job {job_id} never finished: {job.status} {job.error}")


async def test_only_clockify_side_failures_park_a_workspace(simulator: InProcessSimulator, pg_url: str) -> None:
    """A database that refuses writes or a job with bad parameters is our problem, not the
    workspace's: the job fails, the workspace is not parked (one failure would park it here)."""
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url,
        sync={**SYNC, "park_after_failures": 1}, security={"operator_api_key": OPERATOR_KEY},
        worker={"max_attempts": 3, "backoff_base": 0.01, "backoff_max": 0.02},
    ) as addon:
        await addon.process()
        ws, runtime = addon.workspace_id, addon.runtime
        async with runtime.sessions.begin() as s:
            await s.execute(text("ALTER TABLE time_entries ADD CONSTRAINT ck_test_refuse CHECK (false) NOT VALID"))
        await edit_some(simulator, ws)
        refused = await settled(addon, await queue(addon, "sync"))
        assert (refused.status, refused.attempts) == ("FAILED", 3)  # retried like any job, never parked
        assert "ck_test_refuse" in (refused.error or "")

        async with runtime.sessions.begin() as s:
            await job_queue.enqueue(s, ws, "backfill", {"since": "0001-01-01T00:00:00+05:00", "window": "month"})
            bad_id = await s.scalar(select(Job.id).where(Job.kind == "backfill"))
        assert bad_id is not None
        bad = await settled(addon, bad_id)
        assert (bad.status, bad.attempts) == ("FAILED", 1)  # retrying bad parameters cannot help
        assert "params.since" in (bad.error or "")

        async with runtime.sessions() as s:
            row = await s.get(SyncState, (ws, WORKSPACE_KIND))
        assert row is not None
        assert (row.consecutive_failures, row.parked_until, row.parked_reason) == (0, None, None)

        async with runtime.sessions.begin() as s:
            await s.execute(text("ALTER TABLE time_entries DROP CONSTRAINT ck_test_refuse"))
        assert (await settled(addon, await queue(addon, "sync"))).status == "DONE"
        await assert_mirror(addon, simulator)
