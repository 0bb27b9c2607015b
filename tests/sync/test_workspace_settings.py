"""What a workspace admin types into a NUMBER setting never stops scheduled sync, for it or anyone.

SETTINGS_UPDATED stores every numeric setting clamped to its documented range
(installations/settings.py); the scheduler reads through the same clamp, so rows an older
version stored unclamped are harmless too; and a workspace whose scheduling still fails
is logged, counted and skipped while the others are queued.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select, update
from structlog.testing import capture_logs

import clockify_addon.app
import clockify_addon.settings
from clockify_core.installations.models import Installation
from clockify_core.installations.settings import (
    BACKFILL_MONTHS,
    FLAGS,
    NUMBERS,
    SYNC_INTERVAL_MINUTES,
    flag,
    normalize,
    number,
    raw,
)
from clockify_core.jobs.models import Job, JobKind, JobStatus
from clockify_core.jobs.worker import run_one
from clockify_core.manifest.builder import DEFAULT_SETTINGS
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.sync import scheduler
from clockify_core.sync.models import WORKSPACE_KIND, SyncState
from clockify_core.testing.addon import ADDON_URL, AddonHarness, installed_addon
from clockify_core.testing.faults import refused_for_workspace
from tests.gate import Gate
from tests.sync.conftest import SYNC

INTERVAL = SYNC_INTERVAL_MINUTES.id
DEFAULT_INTERVAL = SYNC_INTERVAL_MINUTES.default


# The ranges ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("typed", "stored"), [
    (99999999999, 10_080), ("99999999999", 10_080), ("1e400", 10_080), (math.inf, 10_080), (10**400, 10_080),
    ("9" * 5000, 10_080), (-5, 5), ("-1e400", 5), (-math.inf, 5), (3, 5), (0.5, 5), (0, 0), ("0", 0), (-0.0, 0),
    (30, 30), (" 30 ", 30), ("42.9", 42), (10_080, 10_080),
    ("abc", DEFAULT_INTERVAL), ("", DEFAULT_INTERVAL), ("nan", DEFAULT_INTERVAL), (math.nan, DEFAULT_INTERVAL),
    (True, DEFAULT_INTERVAL), (None, DEFAULT_INTERVAL), ([60], DEFAULT_INTERVAL), ({"v": 60}, DEFAULT_INTERVAL),
])
def test_every_typed_interval_becomes_one_in_range(typed: Any, stored: int) -> None:
    assert SYNC_INTERVAL_MINUTES.clamp(typed) == stored
    assert number([{"id": INTERVAL, "value": typed}], SYNC_INTERVAL_MINUTES) == stored
    [entry], _ = normalize([{"id": INTERVAL, "name": "Sync every (minutes)", "value": typed}])
    assert entry == {"id": INTERVAL, "name": "Sync every (minutes)", "value": stored}


def test_backfill_months_and_checkboxes() -> None:
    assert [BACKFILL_MONTHS.clamp(v) for v in (99999999999, "1e400", -5, "abc", 6, "12")] == [240, 240, 0, 0, 6, 12]
    settings, adjusted = normalize([
        {"id": "backfill_months", "value": -3}, {"id": "sync_enabled", "value": "off"},
        {"id": "flows_enabled", "value": "TRUE"}, {"id": "note", "value": [math.inf, {"a": -math.inf}, "x"]},
        {"id": "other", "value": math.nan}, {"id": "kept", "value": "as typed"},
    ])
    assert settings == [
        {"id": "backfill_months", "value": 0}, {"id": "sync_enabled", "value": False},
        {"id": "flows_enabled", "value": True}, {"id": "note", "value": [None, {"a": None}, "x"]},
        {"id": "other", "value": None}, {"id": "kept", "value": "as typed"},
    ]
    assert [a.id for a in adjusted] == ["backfill_months", "sync_enabled", "flows_enabled", "note", "other"]
    assert flag([{"id": "sync_enabled", "value": "no"}], "sync_enabled") is False
    assert flag([{"id": "sync_enabled", "value": ["?"]}], "sync_enabled") is True  # unreadable: the default


@pytest.mark.parametrize("stored", [None, 5, "text", {"sync_interval_minutes": 60}, [1, "x", None, {"id": 5}]])
def test_any_stored_shape_reads_as_the_default(stored: Any) -> None:
    """An old row may hold anything in ``settings``: reading it never raises."""
    assert number(stored, SYNC_INTERVAL_MINUTES, 7) == 7
    assert flag(stored, "sync_enabled") is True
    assert raw(stored, INTERVAL) is None


def test_the_manifest_declares_every_numeric_setting_with_its_range() -> None:
    declared = [s for tab in DEFAULT_SETTINGS.tabs for s in tab.settings]
    numbers = {s.id: s for s in declared if s.type == "NUMBER"}
    checkboxes = {s.id: s for s in declared if s.type == "CHECKBOX"}
    assert set(numbers) == set(NUMBERS)
    assert set(checkboxes) == set(FLAGS)
    for setting_id, setting in numbers.items():
        spec = NUMBERS[setting_id]
        assert setting.value == spec.default
        assert spec.minimum <= spec.default <= spec.maximum or spec.default == spec.off
        assert setting.description is not None
        assert f"{spec.minimum} to {spec.maximum}" in setting.description  # the admin sees the range
    assert all(checkboxes[i].value == FLAGS[i] for i in FLAGS)


# Through HTTP, with the scheduler ----------------------------------------------------------------

@asynccontextmanager
async def two_workspaces(simulator: InProcessSimulator, db_url: str) -> AsyncIterator[tuple[AddonHarness, str]]:
    """The add-on installed in both simulated workspaces and bootstrapped; the second workspace's id."""
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=db_url, sync=SYNC,
    ) as addon:
        other = next(ws for ws in simulator.sim.workspaces if ws != addon.workspace_id)
        await simulator.install(ADDON_URL, workspace_id=other)
        await addon.process()
        yield addon, other


async def stored_settings(addon: AddonHarness, workspace_id: str) -> Any:
    async with addon.runtime.sessions() as s:
        installation = await s.get(Installation, workspace_id)
        assert installation is not None
        return installation.settings


async def all_due(addon: AddonHarness) -> None:
    """Every workspace is due now, with no sync queued (what a round of finished syncs leaves)."""
    async with addon.runtime.sessions.begin() as s:
        await s.execute(update(SyncState).where(SyncState.kind == WORKSPACE_KIND).values(next_run_at=None))
        await s.execute(update(Job).where(Job.kind == "sync", Job.status == JobStatus.QUEUED)
                        .values(status=JobStatus.CANCELLED))


async def next_runs(addon: AddonHarness) -> dict[str, datetime | None]:
    async with addon.runtime.sessions() as s:
        rows = await s.execute(select(SyncState.workspace_id, SyncState.next_run_at)
                               .where(SyncState.kind == WORKSPACE_KIND))
        return dict(rows.all())


async def test_settings_updated_stores_typed_numbers_clamped_and_every_workspace_still_syncs(
    simulator: InProcessSimulator, db_url: str
) -> None:
    async with two_workspaces(simulator, db_url) as (addon, healthy):
        ws, marketplace, installed = addon.workspace_id, simulator.sim.marketplace, addon.installation
        assert installed is not None
        for typed, stored in ((99999999999, 10_080), ("1e400", 10_080), (-5, 5), ("abc", DEFAULT_INTERVAL),
                              ("90", 90)):
            # The admin types it in Clockify, which stores it as typed and sends SETTINGS_UPDATED.
            with capture_logs() as logs:
                await marketplace.update_settings(installed.addon_id, [{"id": INTERVAL, "value": typed},
                                                                      {"id": "backfill_months", "value": typed}])
            assert marketplace.calls[-1].status_code == 200, (typed, marketplace.calls[-1])
            settings = await stored_settings(addon, ws)
            assert raw(settings, INTERVAL) == stored, typed
            assert raw(settings, "backfill_months") == BACKFILL_MONTHS.clamp(typed)
            clamped = [(e["setting"], e["stored"]) for e in logs if e["event"] == "lifecycle.setting_clamped"]
            assert (INTERVAL, stored) in clamped if stored != typed else clamped == []

            await all_due(addon)
            now = datetime.now(UTC) + timedelta(seconds=1)
            assert sorted(await scheduler.tick(addon.runtime, now=now) or []) == sorted([ws, healthy]), typed
            following = await next_runs(addon)
            assert following[ws] == now + timedelta(minutes=stored)  # at the clamped interval
            assert following[healthy] == now + timedelta(minutes=DEFAULT_INTERVAL)
        assert addon.runtime.metrics.registry.get_sample_value(
            "installation_loop_errors_total", {"loop": "sync_scheduler"}) is None


async def test_a_shorter_interval_moves_the_planned_run_a_longer_one_does_not(
    simulator: InProcessSimulator, db_url: str
) -> None:
    """The run planned under the old interval is not waited for when the admin shortens it
    (SETTINGS_UPDATED re-plans); lengthening it leaves the nearer planned run alone."""
    async with two_workspaces(simulator, db_url) as (addon, other):
        ws, marketplace, installed = addon.workspace_id, simulator.sim.marketplace, addon.installation
        assert installed is not None
        planned = await next_runs(addon)
        assert planned[ws] is not None
        assert planned[ws] > datetime.now(UTC) + timedelta(minutes=DEFAULT_INTERVAL - 1)  # the bootstrap planned it
        before = datetime.now(UTC)
        await marketplace.update_settings(installed.addon_id, [{"id": INTERVAL, "value": 5}])
        assert marketplace.calls[-1].status_code == 200, marketplace.calls[-1]
        moved = await next_runs(addon)
        assert moved[ws] is not None
        assert before + timedelta(minutes=5) <= moved[ws] <= datetime.now(UTC) + timedelta(minutes=5)
        assert moved[other] == planned[other]  # another workspace's plan is its own
        await marketplace.update_settings(installed.addon_id, [{"id": INTERVAL, "value": 600}])
        assert (await next_runs(addon))[ws] == moved[ws]


async def test_a_json_number_too_large_for_a_float_is_stored_clamped(simulator: InProcessSimulator, pg_url: str) -> None:
    """``1e400`` as a JSON number reads as infinity, which no JSON column stores: it was refused (400)."""
    async with two_workspaces(simulator, pg_url) as (addon, _):
        installed = addon.installation
        assert installed is not None
        ws, addon_id = addon.workspace_id, installed.addon_id
        body = (b'{"workspaceId": "%s", "addonId": "%s", "settings": [{"id": "sync_interval_minutes", "value": 1e400}, '
                b'{"id": "backfill_months", "value": -1e400}, {"id": "a_newer_setting", "value": [1e400, 2]}]}'
                % (ws.encode(), addon_id.encode()))
        token = installed.signer.lifecycle_token(ws, addon_id)
        response = await addon.client.post("/lifecycle/settings-updated", content=body, headers={
            "Content-Type": "application/json", "X-Addon-Lifecycle-Token": token})
        assert response.status_code == 200, response.text
        settings = await stored_settings(addon, ws)
        assert [(s["id"], s["value"]) for s in settings] == [
            (INTERVAL, 10_080), ("backfill_months", 0), ("a_newer_setting", [None, 2])]


async def test_bad_rows_an_older_version_stored_do_not_stop_the_scheduler(simulator: InProcessSimulator, db_url: str) -> None:
    """Unclamped values (and a row the database refuses to schedule) in the table already:
    every other workspace is scheduled, the failing one is logged, counted and retried next round."""
    async with two_workspaces(simulator, db_url) as (addon, healthy):
        ws, runtime = addon.workspace_id, addon.runtime
        broken = "old-version-row"
        async with runtime.sessions.begin() as s:
            installation = await s.get(Installation, ws)
            assert installation is not None
            # What the previous SETTINGS_UPDATED handler stored as it came.
            installation.settings = [{"id": INTERVAL, "name": "x", "value": 99999999999},
                                     {"id": "sync_enabled", "name": "x", "value": "yes"},
                                     {"id": "backfill_months", "name": "x", "value": "1e400"}]
            s.add(Installation(workspace_id=broken, addon_id="old-addon", status="ACTIVE",
                               settings=orjson.loads(b'{"sync_interval_minutes": "1e400"}')))
        await all_due(addon)
        now = datetime.now(UTC) + timedelta(seconds=1)
        async with refused_for_workspace(runtime.engine, "jobs", broken, "INSERT"):
            with capture_logs() as logs:
                scheduled = await scheduler.tick(runtime, now=now)
        assert sorted(scheduled or []) == sorted([ws, healthy])
        following = await next_runs(addon)
        assert following[ws] == now + timedelta(minutes=10_080)
        assert following[healthy] == now + timedelta(minutes=DEFAULT_INTERVAL)
        assert following.get(broken) is None  # its savepoint was undone: still due
        assert runtime.metrics.registry.get_sample_value(
            "installation_loop_errors_total", {"loop": "sync_scheduler"}) == 1
        [failure] = [e for e in logs if e["event"] == "sync_scheduler.installation_failed"]
        assert failure["workspace_id"] == broken
        assert failure["log_level"] == "error"
        async with runtime.sessions() as s:
            queued = dict((await s.execute(select(Job.workspace_id, Job.status).where(
                Job.kind == "sync", Job.status == JobStatus.QUEUED))).all())
        assert queued == {ws: JobStatus.QUEUED, healthy: JobStatus.QUEUED}

        # Once the database takes it again, the next round schedules it, at the default interval.
        later = now + timedelta(seconds=1)
        assert await scheduler.tick(runtime, now=later) == [broken]
        assert (await next_runs(addon))[broken] == later + timedelta(minutes=runtime.settings.sync.interval_minutes)



async def test_a_bootstrap_plans_the_first_sync_from_the_settings_as_they_are_when_it_ends(
    simulator: InProcessSimulator, db_url: str
) -> None:
    """The admin shortens the interval while the bootstrap runs (it read the installation when
    claimed, and no run was planned yet to bring forward): the first scheduled sync still comes
    at the new interval, not the old one."""
    gate = Gate(simulator.transport)
    simulator.transport = gate  # the service's calls to Clockify go through it
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=db_url,
        sync={**SYNC, "concurrency": 1},
    ) as addon:
        installed = addon.installation
        assert installed is not None
        assert await run_one(addon.runtime, kinds=(JobKind.REGISTER_WEBHOOKS,))
        gate.hold_after(4)
        bootstrap = asyncio.create_task(run_one(addon.runtime, kinds=(JobKind.BOOTSTRAP,)))
        held = asyncio.create_task(gate.holding.wait())
        await asyncio.wait({bootstrap, held}, return_when=asyncio.FIRST_COMPLETED)
        assert gate.holding.is_set(), "the bootstrap ended before the held request"
        await simulator.sim.marketplace.update_settings(installed.addon_id, [{"id": INTERVAL, "value": 5}])
        assert simulator.sim.marketplace.calls[-1].status_code == 200
        gate.release()
        assert await bootstrap
        await addon.process()
        ended = datetime.now(UTC)
        planned = (await next_runs(addon))[addon.workspace_id]
        assert planned is not None
        assert planned <= ended + timedelta(minutes=5), planned - ended
