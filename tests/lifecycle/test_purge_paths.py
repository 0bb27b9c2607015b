"""Both ways a workspace's data is deleted remove the same rows (db/purge.py).

At uninstall with ``LIFECYCLE__RETENTION_DAYS=0`` the data goes in the lifecycle call's
transaction; with a retention period, retention deletes it once ``purge_after`` has passed.
A workspace installed twice (the first uninstall queued a job that removes its webhook
registrations at Clockify) then uninstalled again: every row it had before that last
uninstall is gone except its installation record, on either path. The only row an
immediate purge leaves is the one queued after it: the job for the last uninstall's
registrations.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

import universal_webhook.app
import universal_webhook.settings
from clockify_core.flows.executor import run_due
from clockify_core.installations.models import Installation
from clockify_core.jobs.models import Job, JobKind
from clockify_core.models import metadata
from clockify_core.retention.service import run_retention
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import ADDON_URL, AddonHarness, installed_addon

Rows = dict[str, set[tuple[Any, ...]]]


async def workspace_rows(addon: AddonHarness) -> Rows:
    """The primary keys of the workspace's rows, per table that has a ``workspace_id``."""
    rows: Rows = {}
    async with addon.runtime.sessions() as s:
        for table in metadata.sorted_tables:
            if "workspace_id" in table.c:
                keys = await s.execute(select(*table.primary_key.columns).where(table.c.workspace_id == addon.workspace_id))
                rows[table.name] = {tuple(key) for key in keys}
    return rows


async def some_activity(addon: AddonHarness, simulator: InProcessSimulator, label: str) -> None:
    """A flow, an entry that runs it, and everything that leaves behind (inbox, mirror, runs, jobs)."""
    headers = {"X-Addon-Token": addon.user_token(role="OWNER")}
    created = await addon.client.post("/api/flows", headers=headers, json={
        "name": f"every entry {label}", "trigger": {"events": ["NEW_TIME_ENTRY"]},
        "actions": [{"type": "set_variable", "name": "seen", "value": "{{ $.description }}"}]})
    assert created.status_code == 201, created.text
    client = simulator.owner_client()
    r = await client.post(f"/api/v1/workspaces/{addon.workspace_id}/time-entries", json={
        "start": "2025-06-01T08:00:00Z", "end": "2025-06-01T09:00:00Z", "description": label})
    assert r.status_code == 201, r.text
    await addon.process()
    while await run_due(addon.runtime):
        pass


@pytest.mark.parametrize("retention_days", [0, 1])
async def test_immediate_and_retention_purges_remove_the_same_rows(
    simulator: InProcessSimulator, pg_url: str, retention_days: int
) -> None:
    async with installed_addon(
        simulator, universal_webhook.app.create_app, universal_webhook.settings.Settings, db_url=pg_url,
        lifecycle={"retention_days": retention_days},
    ) as addon:
        marketplace = simulator.sim.marketplace
        await addon.process()
        await some_activity(addon, simulator, "first install")
        assert addon.installation is not None
        await marketplace.uninstall(addon.installation.addon_id)
        await addon.process()
        addon.installation = await simulator.install(ADDON_URL)
        await addon.process()
        await some_activity(addon, simulator, "second install")

        before = await workspace_rows(addon)
        assert {"installations", "jobs", "webhook_subscriptions", "inbox_events", "time_entries", "flows",
                "flow_runs", "sync_state"} <= {table for table, keys in before.items() if keys}
        async with addon.runtime.sessions() as s:
            # The first uninstall's: a row the workspace had, which no purge may keep.
            assert await s.scalar(select(Job.id).where(Job.workspace_id == addon.workspace_id,
                                                       Job.kind == JobKind.UNREGISTER_WEBHOOKS)) is not None

        await marketplace.uninstall(addon.installation.addon_id)
        assert marketplace.calls[-1].status_code == 200
        await addon.process()
        if retention_days:
            async with addon.runtime.sessions() as s:
                installation = await s.get(Installation, addon.workspace_id)
                assert installation is not None
                assert installation.purge_after is not None
                due = installation.purge_after + timedelta(seconds=1)
            await run_retention(addon.runtime, now=due)

        after = await workspace_rows(addon)
        kept = {table: len(keys & after[table]) for table, keys in before.items() if keys & after[table]}
        added = {table: len(keys - before[table]) for table, keys in after.items() if keys - before[table]}
        assert kept == {"installations": 1}
        assert added == ({} if retention_days else {"jobs": 1})
        if not retention_days:
            async with addon.runtime.sessions() as s:
                [job] = (await s.scalars(select(Job).where(Job.workspace_id == addon.workspace_id))).all()
            assert job.kind == JobKind.UNREGISTER_WEBHOOKS
