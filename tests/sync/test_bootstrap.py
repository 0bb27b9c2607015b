"""Bootstrap against the simulator: the mirror ends equal to Clockify's data, per tier."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

import api_studio.app
import api_studio.settings
import clockify_addon.app
import clockify_addon.settings
from clockify_core.jobs.models import Job
from clockify_core.mirror.models import Entity, TimeEntry
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.sync.models import SyncState
from clockify_core.testing.addon import installed_addon
from tests.sync.conftest import KEY_COLUMNS, SYNC, assert_raw_match, assert_same, expected, mirrored


async def test_bootstrap_mirrors_the_workspace(simulator: InProcessSimulator, db_url: str) -> None:
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=db_url, sync=SYNC,
    ) as addon:
        await addon.process()
        ws = simulator.sim.workspace(addon.workspace_id)
        async with addon.runtime.sessions() as s:
            for kind in KEY_COLUMNS:
                assert_same(kind, await mirrored(s, ws.id, kind), expected(ws, kind))
            await assert_raw_match(s, ws)
            entities = dict((await s.execute(
                select(Entity.kind, func.count()).where(Entity.workspace_id == ws.id).group_by(Entity.kind)
            )).all())
            job = await s.scalar(select(Job).where(Job.kind == "bootstrap"))
            states = {r.kind: r for r in (await s.execute(select(SyncState))).scalars()}
            running = await s.scalar(select(func.count()).select_from(TimeEntry).where(TimeEntry.end_at.is_(None)))
        assert entities["user_group"] == len(ws.user_groups)
        assert entities["custom_field"] == len(ws.custom_fields)
        assert entities["workspace"] == 1
        assert running == len(ws.entries.running) == 2
        assert job is not None
        assert job.status == "DONE", job.error
        progress: dict[str, Any] = job.progress
        assert progress["rows"] >= len(ws.entries)
        assert progress["pages"] > 0
        assert progress["percent"] == 100
        assert states["time_entry"].rows_total == len(ws.entries)
        assert states["time_entry"].watermark is not None
        assert states["project"].rows_total == len(ws.projects)

        status = (await addon.client.get("/api/status", headers={"X-Addon-Token": addon.user_token()})).json()
        shown = next(j for j in status["jobs"] if j["kind"] == "bootstrap")
        assert shown["progress"]["rows"] == progress["rows"]
        assert "eta_seconds" in shown["progress"]
        assert {s["kind"] for s in status["sync"]} >= {"time_entry", "project", "user"}


async def test_api_studio_bootstraps_reference_data_only(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(
        simulator, api_studio.app.create_app, api_studio.settings.Settings, db_url=pg_url, sync=SYNC,
    ) as addon:
        await addon.process()
        ws = simulator.sim.workspace(addon.workspace_id)
        async with addon.runtime.sessions() as s:
            for kind in ("project", "client", "tag", "task", "user"):
                assert_same(kind, await mirrored(s, ws.id, kind), expected(ws, kind))
            assert await s.scalar(select(func.count()).select_from(TimeEntry)) == 0
            kinds = set((await s.execute(select(Entity.kind).distinct())).scalars())
            job = await s.scalar(select(Job).where(Job.kind == "bootstrap"))
            states = (await s.execute(select(SyncState))).scalars().all()
        # Only what api_studio's scopes allow: no expenses, invoices, approvals...
        assert kinds <= {"workspace", "user_group", "custom_field"}, kinds
        assert job is not None
        assert job.status == "DONE"
        assert "time_entry" not in {st.kind for st in states}
        # The detailed report was never asked for.
        registry = addon.runtime.metrics.registry
        assert not registry.get_sample_value("clockify_request_duration_seconds_count", {"api": "reports"})


@pytest.mark.parametrize("source", ["report", "user"])
async def test_both_time_entry_sources_give_identical_rows(
    source: str, simulator: InProcessSimulator, pg_url: str
) -> None:
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url,
        sync={**SYNC, "time_entry_source": source},
    ) as addon:
        await addon.process()
        ws = simulator.sim.workspace(addon.workspace_id)
        async with addon.runtime.sessions() as s:
            assert_same("time_entry", await mirrored(s, ws.id, "time_entry"), expected(ws, "time_entry"))
            await assert_raw_match(s, ws)  # the report's other shape maps to the same columns
            job = await s.scalar(select(Job).where(Job.kind == "bootstrap"))
        assert job is not None
        assert job.progress["source"] == source
