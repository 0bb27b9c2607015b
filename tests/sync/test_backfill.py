"""Backfill in windows, resumable: killed halfway and restarted, it ends with no gap and no duplicate."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

import clockify_addon.app
import clockify_addon.settings
from clockify_core.jobs.models import Job
from clockify_core.jobs.worker import run_one
from clockify_core.mirror.models import TimeEntry
from clockify_core.simulator.config import FaultSettings
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.sync.service import day_start
from clockify_core.sync.timeentries import windows
from clockify_core.testing.addon import ADDON_URL, AddonHarness, installed_addon
from tests.sync.conftest import SYNC, assert_raw_match, assert_same, expected, mirrored, record

OPERATOR_KEY = "operator-key-for-tests-0123456789"
# Bootstrap reads only the last day, so the history is the backfill's to fetch.
SETTINGS = {"sync": {**SYNC, "bootstrap_days": 1}, "security": {"operator_api_key": OPERATOR_KEY},
            "worker": {"enabled": False, "lease_seconds": 1.0}}


async def queue_backfill(addon: AddonHarness, since: str, window: str = "month") -> int:
    r = await addon.client.post(f"/api/operator/workspaces/{addon.workspace_id}/backfill",
                                json={"since": since, "window": window}, headers={"X-API-Key": OPERATOR_KEY})
    assert r.status_code == 202, r.text
    return int(r.json()["job_id"])


async def job_row(addon: AddonHarness, job_id: int) -> Job:
    async with addon.runtime.sessions() as s:
        job = await s.get(Job, job_id)
    assert job is not None
    return job


async def test_backfill_killed_halfway_resumes_without_gap_or_duplicate(
    simulator: InProcessSimulator, pg_url: str
) -> None:
    recorder = record(simulator)
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url, **SETTINGS,
    ) as addon:
        await addon.process()
        ws = simulator.sim.workspace(addon.workspace_id)
        first_start = min(ws.entries.start[r] for r in ws.entries.by_start.rows)
        since = day_start(datetime.fromtimestamp(first_start, tz=UTC).date())
        job_id = await queue_backfill(addon, since.date().isoformat())
        recorder.requests.clear()  # the bootstrap's reads are not the backfill's
        # Each window answers slowly, so the job is surely in the middle when it dies.
        simulator.sim.faults.configure(FaultSettings(latency_ms=40))
        running = asyncio.create_task(run_one(addon.runtime, kinds=("backfill",)))
        while "done_until" not in (await job_row(addon, job_id)).cursor:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        running.cancel()  # the worker dies: no cleanup, the job stays RUNNING under its lease
        with pytest.raises(asyncio.CancelledError):
            await running
        killed = await job_row(addon, job_id)
        assert killed.status == "RUNNING"
        assert killed.attempts == 1
        committed = datetime.fromisoformat(killed.cursor["done_until"])
        async with addon.runtime.sessions() as s:
            partial = await s.scalar(select(func.count()).select_from(TimeEntry).where(TimeEntry.workspace_id == ws.id))
        assert 0 < partial < len(ws.entries)

        simulator.sim.faults.configure(FaultSettings())
        await asyncio.sleep(1.1)  # the lease runs out; another worker may claim the job
        await addon.process()
        done = await job_row(addon, job_id)
        assert (done.status, done.attempts) == ("DONE", 2), done.error
        async with addon.runtime.sessions() as s:
            assert_same("time_entry", await mirrored(s, ws.id, "time_entry"), expected(ws, "time_entry"))
            await assert_raw_match(s, ws)
        # Every window was read (no gap); windows committed before the kill were read once, and
        # only those in flight when it died (at most window_concurrency) were read again.
        every = windows(since, datetime.fromisoformat(done.cursor["until"]), "month")
        reads = recorder.time_entry_reads()
        per_window = Counter[str]()
        for (start, _source, page), times in reads.items():
            if page == "1":
                per_window[start] = max(per_window[start], times)
        assert set(per_window) == {w[0].strftime("%Y-%m-%dT%H:%M:%S") for w in every}
        again = {start for start, times in per_window.items() if times > 1}
        assert all(times <= 2 for times in reads.values()), reads
        assert all(datetime.fromisoformat(start).replace(tzinfo=UTC) >= committed for start in again), again
        assert len(again) <= addon.settings.sync.window_concurrency
        assert not [start for start, times in per_window.items()
                    if datetime.fromisoformat(start).replace(tzinfo=UTC) < committed and times != 1]


async def test_backfill_over_mirrored_rows_rewrites_them(simulator: InProcessSimulator, pg_url: str) -> None:
    """Bootstrap copies new rows straight in; a backfill of the same range meets them and merges."""
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url,
        sync=SYNC, security={"operator_api_key": OPERATOR_KEY},
    ) as addon:
        await addon.process()
        ws = simulator.sim.workspace(addon.workspace_id)
        ops = simulator.sim.ops
        ops.patch_entry(ws, ws.entries.by_start.rows[3], {"description": "changed before the backfill"})
        await simulator.sim.mount(ADDON_URL, httpx.MockTransport(lambda request: httpx.Response(503)))
        job_id = await queue_backfill(addon, "2020-01-01", window="year")
        await addon.process()
        done = await job_row(addon, job_id)
        assert done.status == "DONE", done.error
        async with addon.runtime.sessions() as s:
            assert_same("time_entry", await mirrored(s, ws.id, "time_entry"), expected(ws, "time_entry"))
            writers = set((await s.execute(select(TimeEntry.written_by).where(TimeEntry.workspace_id == ws.id))).scalars())
        assert writers == {"backfill"}


async def test_progress_is_visible_while_a_backfill_runs(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url, **SETTINGS,
    ) as addon:
        await addon.process()
        job_id = await queue_backfill(addon, "2023-06-01", window="week")
        # Some answers fail (and are retried), so the errors gauge has something to count.
        simulator.sim.faults.configure(FaultSettings(latency_ms=30, error_rate=0.15, seed=5))
        running = asyncio.create_task(run_one(addon.runtime, kinds=("backfill",)))
        labels = f'kind="backfill",workspace_id="{addon.workspace_id}"'
        step = f'endpoint="time_entry",{labels}'
        seen: dict[str, float] = {}
        status: dict[str, object] = {}
        while not running.done():
            text = (await addon.client.get("/metrics")).text
            for line in text.splitlines():
                for gauge in ("job_rows", "job_pages", "job_eta_seconds", "job_errors"):
                    if line.startswith(f"{gauge}{{{labels}}}"):
                        seen[gauge] = float(line.rsplit(" ", 1)[1])
                if line.startswith(f"job_endpoint{{{step}}}"):
                    seen["job_endpoint"] = float(line.rsplit(" ", 1)[1])
            shown = (await addon.client.get("/api/status", headers={"X-Addon-Token": addon.user_token()})).json()
            mine = next(j for j in shown["jobs"] if j["id"] == job_id)
            if mine["status"] == "RUNNING" and mine["progress"].get("eta_seconds"):
                status = mine["progress"]
            await asyncio.sleep(0.05)
        await running
        simulator.sim.faults.configure(FaultSettings())
        assert seen["job_rows"] > 0
        assert seen["job_pages"] > 0
        assert "job_eta_seconds" in seen
        assert seen["job_errors"] > 0
        assert seen["job_endpoint"] == 1
        assert status["endpoint"] == "time_entry"
        assert 0 < float(str(status["percent"])) < 100
        assert str(status["window"]).count("..") == 1
        text = (await addon.client.get("/metrics")).text
        assert f"job_rows{{{labels}}}" not in text  # gauges of a finished job are removed
        assert f"job_errors{{{labels}}}" not in text
        assert f"job_endpoint{{{step}}}" not in text


async def test_backfill_months_setting_extends_bootstrap(simulator: InProcessSimulator, pg_url: str) -> None:
    """``backfill_months`` (a Clockify setting of the installation) queues a backfill before bootstrap's window."""
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url,
        sync={**SYNC, "bootstrap_days": 600, "backfill_window": "month"},
    ) as addon:
        await simulator.sim.marketplace.update_settings(addon.installation.addon_id,
                                                        [{"id": "backfill_months", "value": 6}])
        await addon.process()
        ws = simulator.sim.workspace(addon.workspace_id)
        async with addon.runtime.sessions() as s:
            boot = await s.scalar(select(Job).where(Job.kind == "bootstrap"))
            backfill = await s.scalar(select(Job).where(Job.kind == "backfill"))
            mirror = await mirrored(s, ws.id, "time_entry")
        assert boot is not None
        assert backfill is not None
        assert backfill.status == "DONE"
        since = datetime.fromisoformat(backfill.params["since"])
        until = datetime.fromisoformat(backfill.params["until"])
        assert until == datetime.fromisoformat(boot.cursor["started"]).replace(
            hour=0, minute=0, second=0, microsecond=0) - timedelta(days=600)
        assert since == until.replace(day=1, month=(until.month - 7) % 12 + 1,
                                      year=until.year - (1 if until.month <= 6 else 0))
        sim_rows = expected(ws, "time_entry")
        wanted = {k: v for k, v in sim_rows.items() if v[4] >= since}  # start_at is the 5th key column
        assert_same("time_entry", mirror, wanted)
        assert len(wanted) < len(sim_rows)  # older history was left alone
