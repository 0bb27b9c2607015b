"""A workspace's CHECKBOX settings read the same way by every feature they switch.

Rows stored before SETTINGS_UPDATED normalised checkboxes (or written by hand or through
the API) may hold text, numbers or anything else. ``sync_enabled`` and ``flows_enabled``
holding the same stored value switch sync and flows the same way: false-ish words off,
unknown values the default (on) (installations/settings.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from clockify_core.installations.models import Installation
from clockify_core.jobs.models import Job, JobStatus
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.sync import scheduler
from clockify_core.sync.models import WORKSPACE_KIND, SyncState
from clockify_core.testing.addon import AddonHarness
from tests.flows.conftest import admin, create_flow, new_entry, runs_of, settle

# (stored value, whether the feature is on)
STORED: list[tuple[Any, bool]] = [
    ("off", False), (" OFF ", False), ("0", False), ("no", False), ("disabled", False), ("", False), (0, False),
    (False, False), ("on", True), ("Enabled", True), ("maybe", True), ("enable-it", True), ([], True), ({}, True),
    (["x"], True), (None, True), (True, True), (2, True),
]


async def store_flags(addon: AddonHarness, value: Any) -> None:
    """Both checkboxes hold ``value`` in the installation row; the workspace is due for sync, none queued."""
    async with addon.runtime.sessions.begin() as s:
        installation = await s.get(Installation, addon.workspace_id)
        assert installation is not None
        installation.settings = [{"id": "sync_enabled", "name": "x", "value": value},
                                 {"id": "flows_enabled", "name": "x", "value": value}]
        await s.execute(update(SyncState).where(SyncState.kind == WORKSPACE_KIND).values(next_run_at=None))
        await s.execute(update(Job).where(Job.kind == "sync", Job.status == JobStatus.QUEUED)
                        .values(status=JobStatus.CANCELLED))


async def test_sync_and_flows_read_a_stored_checkbox_the_same_way(
    uw: AddonHarness, simulator: InProcessSimulator
) -> None:
    flow = await create_flow(uw, {"name": "any entry", "trigger": {"events": ["NEW_TIME_ENTRY"]}})
    sample = {"type": "NEW_TIME_ENTRY", "body": {"id": "e1", "description": "x"}}
    runs = 0
    for value, on in STORED:
        await store_flags(uw, value)
        scheduled = await scheduler.tick(uw.runtime, now=datetime.now(UTC) + timedelta(seconds=1))
        assert scheduled == ([uw.workspace_id] if on else []), value

        await new_entry(simulator, description=f"stored {value!r}")
        await settle(uw)
        runs += on
        assert len(await runs_of(uw, flow["id"])) == runs, value

        dry = (await uw.client.post(f"/api/flows/{flow['id']}/dry-run", json={"event": sample},
                                    headers=admin(uw))).json()
        assert dry["would_run"] is on, (value, dry)


async def test_a_repeated_checkbox_is_read_at_its_first_entry(uw: AddonHarness, simulator: InProcessSimulator) -> None:
    flow = await create_flow(uw, {"name": "any entry", "trigger": {"events": ["NEW_TIME_ENTRY"]}})
    async with uw.runtime.sessions.begin() as s:
        installation = await s.get(Installation, uw.workspace_id)
        assert installation is not None
        installation.settings = [{"id": "flows_enabled", "value": "off"}, {"id": "flows_enabled", "value": True}]
    await new_entry(simulator)
    await settle(uw)
    assert await runs_of(uw, flow["id"]) == []
