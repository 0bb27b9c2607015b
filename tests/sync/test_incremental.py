"""Incremental sync catches what webhooks never delivered: edits, late edits, deletions, timers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

import clockify_addon.app
import clockify_addon.settings
from clockify_core.jobs.models import Job
from clockify_core.mirror.models import Project, TimeEntry
from clockify_core.simulator.render import iso
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.sync.models import SyncState
from clockify_core.testing.addon import ADDON_URL, AddonHarness, installed_addon
from tests.sync.conftest import (
    OPERATOR_KEY,
    SYNC,
    assert_raw_match,
    assert_same,
    expected,
    mirrored,
    run_operator_job,
)


@pytest.fixture
async def addon(simulator: InProcessSimulator, pg_url: str) -> AsyncIterator[AddonHarness]:
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url, sync=SYNC,
        security={"operator_api_key": OPERATOR_KEY},
    ) as harness:
        await harness.process()
        yield harness


async def lose_webhooks(simulator: InProcessSimulator) -> None:
    """Clockify keeps sending, but nothing reaches the add-on (docs/clockify.md#retries)."""
    await simulator.sim.mount(ADDON_URL, httpx.MockTransport(lambda request: httpx.Response(503)))


async def test_sync_catches_edits_deletions_and_timers_without_webhooks(
    addon: AddonHarness, simulator: InProcessSimulator
) -> None:
    ws = simulator.sim.workspace(addon.workspace_id)
    ops, store = simulator.sim.ops, ws.entries
    await lose_webhooks(simulator)
    rows = list(store.by_start.rows)
    old_edit, old_move, old_delete, recent_delete = rows[5], rows[40], rows[80], rows[-10]
    ops.patch_entry(ws, old_edit, {"description": "edited long after the fact"})
    moved_to = datetime(2024, 3, 4, 10, tzinfo=UTC)
    ops.patch_entry(ws, old_move, {"start": iso(int(moved_to.timestamp())),
                                    "end": iso(int((moved_to + timedelta(hours=2)).timestamp()))})
    deleted_ids = {store.id_of(old_delete), store.id_of(recent_delete)}
    ops.delete_entry(ws, old_delete)
    ops.delete_entry(ws, recent_delete)
    now = int(datetime.now(UTC).timestamp())
    users = list(ws.users)
    stopped_user = ws.user_ix.ids[next(iter(store.running))]
    ops.stop_timer(ws, stopped_user)
    new_row = ops.create_entry(ws, users[3], {"start": iso(now - 5400), "end": iso(now - 1800),
                                              "description": "made while webhooks were down"})
    started_row = ops.create_entry(ws, users[4], {"start": iso(now - 600), "description": "running now"})
    project_id = next(iter(ws.projects))
    ops.update_project(ws, project_id, {"name": "Renamed without a webhook"})

    await addon.process()  # the webhooks for all of that are lost
    async with addon.runtime.sessions() as s:
        assert await mirrored(s, ws.id, "time_entry") != expected(ws, "time_entry")

    job = await run_operator_job(addon, "sync", reference=True)

    async with addon.runtime.sessions() as s:
        assert_same("time_entry", await mirrored(s, ws.id, "time_entry"), expected(ws, "time_entry"))
        assert_same("project", await mirrored(s, ws.id, "project"), expected(ws, "project"))
        gone = (await s.execute(select(TimeEntry).where(TimeEntry.id.in_(deleted_ids)))).scalars().all()
        fresh = await s.get(TimeEntry, (ws.id, store.id_of(new_row)))
        running = await s.get(TimeEntry, (ws.id, store.id_of(started_row)))
        project = await s.get(Project, (ws.id, project_id))
        state = await s.get(SyncState, (ws.id, "time_entry"))
    assert len(gone) == 2
    assert all(r.deleted_at is not None and r.written_by == "sync" for r in gone)
    assert fresh is not None
    assert fresh.written_by == "sync"
    assert running is not None
    assert running.end_at is None
    assert project is not None
    assert project.name == "Renamed without a webhook"
    assert state is not None
    assert state.last_error is None
    assert state.rows_total == len(store)
    assert job.progress["late_edit_days"] >= 2  # the two old entries' days were re-read


async def test_without_the_change_feed_deletions_in_the_window_are_caught(
    simulator: InProcessSimulator, pg_url: str
) -> None:
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url,
        sync={**SYNC, "change_feed": False}, security={"operator_api_key": OPERATOR_KEY},
    ) as addon:
        await addon.process()
        ws = simulator.sim.workspace(addon.workspace_id)
        ops, store = simulator.sim.ops, ws.entries
        now = int(datetime.now(UTC).timestamp())
        user = list(ws.users)[2]
        row = ops.create_entry(ws, user, {"start": iso(now - 7200), "end": iso(now - 3600), "description": "x"})
        await run_operator_job(addon, "sync")  # webhooks still on: the entry arrives and is read back
        await lose_webhooks(simulator)
        ops.delete_entry(ws, row)
        await run_operator_job(addon, "sync")
        async with addon.runtime.sessions() as s:
            found = await s.get(TimeEntry, (ws.id, store.id_of(row)))
            assert_same("time_entry", await mirrored(s, ws.id, "time_entry"), expected(ws, "time_entry"))
        assert found is not None
        assert found.deleted_at is not None


async def test_a_split_entry_is_reconciled(addon: AddonHarness, simulator: InProcessSimulator) -> None:
    ws = simulator.sim.workspace(addon.workspace_id)
    store = ws.entries
    row = store.by_start.rows[20]
    before = store.rows_total
    r = await simulator.client().post("/__sim/fire", json={"event": "TIME_ENTRY_SPLIT", "workspaceId": ws.id,
                                                           "entityId": store.id_of(row)})
    assert r.status_code == 200, r.text
    await addon.process()
    assert store.rows_total == before + 1
    new_half = store.id_of(before)
    async with addon.runtime.sessions() as s:
        assert_same("time_entry", await mirrored(s, ws.id, "time_entry"), expected(ws, "time_entry"))
        job = await s.scalar(select(Job).where(Job.kind == "reconcile"))
        half = await s.get(TimeEntry, (ws.id, new_half))
    assert job is not None
    assert job.status == "DONE"
    assert job.params["reason"] == "TIME_ENTRY_SPLIT"
    assert half is not None
    assert half.written_by == "reconcile"


async def test_an_entry_created_with_an_old_date_is_caught(addon: AddonHarness, simulator: InProcessSimulator) -> None:
    """Created while webhooks were lost and dated a year back: only ``entities/created`` lists it."""
    ws = simulator.sim.workspace(addon.workspace_id)
    ops, store = simulator.sim.ops, ws.entries
    await run_operator_job(addon, "sync")  # the watermark is now: the next window starts a day before it
    await lose_webhooks(simulator)
    now = int(datetime.now(UTC).timestamp())
    year_ago = now - 365 * 86_400
    users = list(ws.users)
    typed_late = ops.create_entry(ws, users[1], {"start": iso(year_ago), "end": iso(year_ago + 3600),
                                                 "description": "typed in a year late"})
    fixed_late = ops.create_entry(ws, users[2], {"start": iso(year_ago - 86_400 * 40),
                                                 "end": iso(year_ago - 86_400 * 40 + 1800), "description": "draft"})
    ops.patch_entry(ws, fixed_late, {"description": "created and corrected while webhooks were lost"})
    old_edit = store.by_start.rows[7]
    ops.patch_entry(ws, old_edit, {"description": "an old entry edited"})
    old_delete = store.by_start.rows[30]
    deleted_id = store.id_of(old_delete)
    ops.delete_entry(ws, old_delete)
    await addon.process()

    job = await run_operator_job(addon, "sync")

    async with addon.runtime.sessions() as s:
        assert_same("time_entry", await mirrored(s, ws.id, "time_entry"), expected(ws, "time_entry"))
        await assert_raw_match(s, ws)
        created = [await s.get(TimeEntry, (ws.id, store.id_of(row))) for row in (typed_late, fixed_late)]
        gone = await s.get(TimeEntry, (ws.id, deleted_id))
    assert all(row is not None and row.written_by == "sync" for row in created)
    assert created[1] is not None
    assert created[1].description == "created and corrected while webhooks were lost"
    assert gone is not None
    assert gone.deleted_at is not None
    assert job.progress["late_edit_days"] >= 3


async def test_the_simulated_feed_lists_a_new_entry_only_as_created(
    addon: AddonHarness, simulator: InProcessSimulator
) -> None:
    """getUpdatedEntityInfo: an entity created and updated in the range is only in /created."""
    ws = simulator.sim.workspace(addon.workspace_id)
    ops = simulator.sim.ops
    now = int(datetime.now(UTC).timestamp())
    start = now - 400 * 86_400
    row = ops.create_entry(ws, next(iter(ws.users)), {"start": iso(start), "end": iso(start + 60)})
    ops.patch_entry(ws, row, {"description": "edited right away"})
    entry_id = ws.entries.id_of(row)
    api = simulator.owner_client(ws)
    base = f"/api/v1/workspaces/{ws.id}/entities"

    async def ids(which: str, start: int, end: int) -> set[str]:
        r = await api.get(f"{base}/{which}", params={"type": "TIME_ENTRY", "start": iso(start), "end": iso(end)})
        assert r.status_code == 200, r.text
        return {d["id"] for d in r.json()}

    assert entry_id in await ids("created", now - 3600, now + 3600)
    assert entry_id not in await ids("updated", now - 3600, now + 3600)
    # A range that starts after the creation sees the edit as an update.
    await asyncio.sleep(1.1)  # the feed's stamps are whole seconds
    later = int(datetime.now(UTC).timestamp())
    ops.patch_entry(ws, row, {"description": "edited later"})
    assert entry_id in await ids("updated", later, later + 3600)
    assert entry_id not in await ids("created", later, later + 3600)
