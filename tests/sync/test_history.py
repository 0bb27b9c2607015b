"""Complete by default: bootstrap mirrors the recent weeks, then a backfill fetches the whole
history in slices, resumable, shown on the status page; ``history_months`` caps it."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

import clockify_addon.app
import clockify_addon.settings
from clockify_core.installations.models import Installation
from clockify_core.jobs.models import Job
from clockify_core.jobs.worker import run_one
from clockify_core.ratelimit import free_plan_limit
from clockify_core.simulator.config import (
    DataScale,
    FaultSettings,
    RateLimitSettings,
    SimulatorConfig,
)
from clockify_core.simulator.testing import InProcessSimulator, small_config
from clockify_core.sync.jobs import months_before
from clockify_core.sync.timeentries import floor_to
from clockify_core.testing.addon import AddonHarness, installed_addon
from tests.sync.conftest import assert_same, expected, mirrored, record

# The deployment's defaults (bootstrap_days 90, monthly windows, the history backfill on), except
# that a slice ends after every window, so the history takes many slices.
SYNC = {"batch_rows": 250, "concurrency": 4, "slice_seconds": 0}


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    # Three years of entries ending today: 90 days are a small part of them.
    return small_config(
        anchor=datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0),
        scale=DataScale(workspaces=1, users=4, projects=6, time_entries=1200, years=3.0, running_timers=1,
                        user_groups=1, clients=2, tags=3),
    )


async def _job(addon: AddonHarness, kind: str) -> Job | None:
    async with addon.runtime.sessions() as s:
        return await s.scalar(select(Job).where(Job.workspace_id == addon.workspace_id, Job.kind == kind))


async def _status_job(addon: AddonHarness, kind: str) -> dict[str, object]:
    shown = (await addon.client.get("/api/status", headers={"X-Addon-Token": addon.user_token()})).json()
    return next(j for j in shown["jobs"] if j["kind"] == kind)


async def test_whole_history_is_mirrored_without_any_setting(simulator: InProcessSimulator, db_url: str) -> None:
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=db_url, sync=SYNC,
    ) as addon:
        ws = simulator.sim.workspace(addon.workspace_id)
        # Bootstrap first: after it, the mirror holds the recent window only.
        while (boot := await _job(addon, "bootstrap")) is None or boot.status != "DONE":
            await simulator.drain()
            assert await run_one(addon.runtime)
        started = datetime.fromisoformat(boot.cursor["started"])
        recent = floor_to(started - timedelta(days=90), "day")
        async with addon.runtime.sessions() as s:
            after_bootstrap = await mirrored(s, ws.id, "time_entry")
        everything = expected(ws, "time_entry")
        assert 0 < len(after_bootstrap) < len(everything) // 4
        assert all(row[4] >= recent for row in after_bootstrap.values())  # start_at is the 5th key column

        # The backfill bootstrap queued walks back through the history, a slice at a time,
        # and the status API shows how far it got.
        backfill = await _job(addon, "backfill")
        assert backfill is not None
        assert backfill.params == {"until": recent.isoformat(), "history": "all", "window": "month"}
        # Other jobs (the webhook registration) may be due first; this step is about the backfill.
        assert await run_one(addon.runtime, kinds=("backfill",))
        shown = await _status_job(addon, "backfill")
        assert shown["status"] == "QUEUED"
        progress = shown["progress"]
        assert isinstance(progress, dict)
        assert progress["history_reached"] < recent.date().isoformat()
        assert progress["slices"] == 1

        await addon.process()
        async with addon.runtime.sessions() as s:
            assert_same("time_entry", await mirrored(s, ws.id, "time_entry"), everything)
        done = await _status_job(addon, "backfill")
        assert done["status"] == "DONE"
        progress = done["progress"]
        assert isinstance(progress, dict)
        oldest = min(row[4] for row in everything.values())
        assert progress["history_complete"] is True
        assert str(progress["history_reached"]) <= oldest.date().isoformat()
        assert int(str(progress["slices"])) >= 30  # three years of monthly windows, one a slice


async def test_history_months_caps_the_history(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url, sync=SYNC,
    ) as addon:
        await simulator.sim.marketplace.update_settings(addon.installation.addon_id if addon.installation else "",
                                                        [{"id": "history_months", "value": 12}])
        await addon.process()
        ws = simulator.sim.workspace(addon.workspace_id)
        boot, backfill = await _job(addon, "bootstrap"), await _job(addon, "backfill")
        assert boot is not None
        assert backfill is not None
        assert backfill.status == "DONE", backfill.error
        since = months_before(floor_to(datetime.fromisoformat(boot.cursor["started"]), "day"), 12)
        assert datetime.fromisoformat(backfill.params["since"]) == since
        everything = expected(ws, "time_entry")
        wanted = {k: v for k, v in everything.items() if v[4] >= since}
        async with addon.runtime.sessions() as s:
            assert_same("time_entry", await mirrored(s, ws.id, "time_entry"), wanted)
        assert len(wanted) < len(everything) // 2  # a year of three


async def test_history_backfill_resumes_after_the_worker_dies(simulator: InProcessSimulator, pg_url: str) -> None:
    """Killed mid-history (no cleanup: the job stays RUNNING under its lease) and run again
    by another worker, the backfill goes on from its cursor: no window before it is read again."""
    recorder = record(simulator)
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url,
        sync={**SYNC, "slice_seconds": 3600}, worker={"lease_seconds": 1.0},
    ) as addon:
        while (boot := await _job(addon, "bootstrap")) is None or boot.status != "DONE":
            await simulator.drain()
            assert await run_one(addon.runtime)
        backfill = await _job(addon, "backfill")
        assert backfill is not None
        recorder.requests.clear()
        simulator.sim.faults.configure(FaultSettings(latency_ms=40))
        running = asyncio.create_task(run_one(addon.runtime, kinds=("backfill",)))
        while "reached" not in (job := await _job(addon, "backfill") or backfill).cursor or (
            datetime.fromisoformat(job.cursor["reached"]) > datetime.fromisoformat(job.params["until"]) - timedelta(days=200)
        ):
            await asyncio.sleep(0.02)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        killed = await _job(addon, "backfill")
        assert killed is not None
        assert killed.status == "RUNNING"
        reached = datetime.fromisoformat(killed.cursor["reached"])

        simulator.sim.faults.configure(FaultSettings())
        await asyncio.sleep(1.1)  # the lease runs out
        await addon.process()
        done = await _job(addon, "backfill")
        assert done is not None
        assert (done.status, done.attempts) == ("DONE", 2), done.error
        ws = simulator.sim.workspace(addon.workspace_id)
        async with addon.runtime.sessions() as s:
            assert_same("time_entry", await mirrored(s, ws.id, "time_entry"), expected(ws, "time_entry"))
        # Windows the first worker had committed (at or after ``reached``) were read once;
        # only the one in flight when it died was read again.
        per_window = Counter[str]()
        for (start, _source, page), times in recorder.time_entry_reads().items():
            if page == "1":
                per_window[start] = max(per_window[start], times)
        again = [start for start, times in per_window.items() if times > 1]
        assert len(again) <= 1, again
        assert all(datetime.fromisoformat(start).replace(tzinfo=UTC) < reached for start in again)


async def test_free_plan_history_spends_only_the_hourly_quota(simulator: InProcessSimulator, pg_url: str) -> None:
    """On the Free plan the history backfill takes the workspace's 30 requests an hour and no
    more: once the bucket is dry it goes back to the queue (no attempt spent, cursor kept)
    until tokens are back, however many hours the history needs."""
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url,
        sync={**SYNC, "slice_seconds": 3600, "max_rate_wait_seconds": 1.0},
    ) as addon:
        while (boot := await _job(addon, "bootstrap")) is None or boot.status != "DONE":
            await simulator.drain()
            assert await run_one(addon.runtime)
        async with addon.runtime.sessions.begin() as s:
            inst = await s.get(Installation, addon.workspace_id)
            assert inst is not None
            inst.subscription_plan = "FREE"
        simulator.sim.config.rate_limit = RateLimitSettings(plan="free")
        await simulator.sim.limiter.aclose()
        # The Free budget starts from a full bucket (its burst), whatever the paid bootstrap
        # left in the workspace's bucket: waiting for a refill would depend on the machine's load.
        await addon.runtime.limiter.aclose()
        assert await run_one(addon.runtime, kinds=("backfill",))
        job = await _job(addon, "backfill")
        assert job is not None
        burst = free_plan_limit(addon.settings.rate_limit).burst
        assert (job.status, job.attempts) == ("QUEUED", 0)
        assert "deferred" in job.progress
        assert job.run_after > datetime.now(UTC) + timedelta(seconds=10)  # when a token is back
        # Each of the bucket's tokens read one month of history (the report, one page each).
        until = datetime.fromisoformat(job.params["until"])
        assert datetime.fromisoformat(job.cursor["reached"]) == months_before(until, burst - 1)
        assert simulator.sim.stats["http.429"] == 0
