"""Webhooks alone keep the mirror equal to Clockify's data, with duplicate and reordered delivery.

The simulator changes its data through its own operations (each one sends the webhook
Clockify would send), delivering every event with a 30 % chance of a duplicate and in
shuffled windows. After processing, every touched entity's typed columns in the mirror
equal what the simulator's API serves, and deletions are marked.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlalchemy import Table, select

import clockify_addon.app
import clockify_addon.settings
from clockify_core.mirror.mapping import row_values
from clockify_core.mirror.writer import table_for
from clockify_core.simulator import render
from clockify_core.simulator.config import DeliverySettings, SimulatorConfig
from clockify_core.simulator.testing import InProcessSimulator, small_config
from clockify_core.testing.addon import AddonHarness, installed_addon

BOOKKEEPING = {"workspace_id", "id", "raw", "deleted_at", "written_at", "written_by", "last_event", "kind"}


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return small_config(delivery=DeliverySettings(duplicate_rate=0.3, reorder_window=6, reorder_flush_ms=5))


def _typed(kind: str, workspace_id: str, body: dict[str, Any]) -> dict[str, Any]:
    values = row_values(kind, workspace_id, body["id"], body)
    out = {k: v for k, v in values.items() if k not in BOOKKEEPING}
    if "tag_ids" in out:
        out["tag_ids"] = sorted(out["tag_ids"])
    if "custom_fields" in out:
        out["custom_fields"] = sorted((c.get("customFieldId"), c.get("value")) for c in out["custom_fields"])
    return out


async def _mirror(addon: AddonHarness, kind: str, ids: list[str]) -> dict[str, tuple[dict[str, Any], bool]]:
    table = table_for(kind)
    assert isinstance(table, Table)
    async with addon.runtime.sessions() as session:
        rows = (await session.execute(select(table).where(table.c.workspace_id == addon.workspace_id, table.c.id.in_(ids)))).mappings()
        result = {}
        for row in rows:
            typed = {k: row[k] for k in row if k not in BOOKKEEPING}
            if "tag_ids" in typed:
                typed["tag_ids"] = sorted(typed["tag_ids"])
            if "custom_fields" in typed:
                typed["custom_fields"] = sorted((c.get("customFieldId"), c.get("value")) for c in typed["custom_fields"])
            result[row["id"]] = (typed, row["deleted_at"] is not None)
        return result


async def test_mirror_equals_simulator_under_duplicates_and_reordering(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url,
        mirror={"refetch": "always"},
    ) as addon:
        await addon.process()
        ws = simulator.sim.workspace(addon.workspace_id)
        ops, rng = simulator.sim.ops, random.Random(11)
        users, tags = list(ws.users), list(ws.tags)
        projects = [p for p in ws.projects.values() if not p["archived"]]

        client = ops.create_client(ws, {"name": "Mirror Client"})
        ops.update_client(ws, client["id"], {"name": "Mirror Client 2", "archived": True})
        doomed = ops.create_client(ws, {"name": "Doomed Client"})
        ops.update_client(ws, doomed["id"], {"archived": True})
        ops.delete_client(ws, doomed["id"])
        project = ops.create_project(ws, {"name": "Mirror Project", "clientId": client["id"], "billable": True})
        ops.update_project(ws, project["id"], {"note": "edited", "color": "#FF0000"})
        tag = ops.create_tag(ws, {"name": "mirror-tag"})
        ops.update_tag(ws, tag["id"], {"name": "mirror-tag-2"})

        rows = []
        for n in range(24):
            start = f"2025-05-{1 + n % 28:02d}T{8 + n % 9:02d}:00:00Z"
            end = f"2025-05-{1 + n % 28:02d}T{9 + n % 9:02d}:30:00Z"
            body = {"start": start, "end": end, "description": f"entry {n}", "tagIds": rng.sample(tags, 2),
                    "projectId": rng.choice(projects)["id"]}
            rows.append(ops.create_entry(ws, rng.choice(users), body))
        for step in range(60):
            row = rng.choice(rows)
            if ws.entries.is_deleted(row):
                ops.restore_entry(ws, row)
            elif step % 7 == 0:
                ops.delete_entry(ws, row)
            else:
                ops.patch_entry(ws, row, {"description": f"edit {step}", "billable": bool(step % 2),
                                          "tagIds": rng.sample(tags, 1 + step % 3)})
        if ws.entries.is_deleted(rows[0]):
            ops.restore_entry(ws, rows[0])
        before_split = ws.entries.rows_total
        ops.split_entry(ws, rows[0])
        second_half = ws.entries.id_of(before_split)
        running = ops.create_entry(ws, users[0], {"start": "2025-06-01T07:00:00Z", "description": "running"})

        await addon.process()
        deliveries = simulator.sim.delivery.query()
        assert any(d.duplicate for d in deliveries)
        assert all(d.status == "delivered" for d in deliveries), {d.status for d in deliveries}

        touched = sorted({ws.entries.id_of(r) for r in [*rows, running, before_split]})
        mirrored = await _mirror(addon, "time_entry", touched)
        assert set(mirrored) == set(touched)
        for entry_id in touched:
            row = ws.entries.any_row_of(entry_id)
            typed, deleted = mirrored[entry_id]
            assert deleted == ws.entries.is_deleted(row), entry_id
            if not deleted:
                assert typed == _typed("time_entry", ws.id, render.time_entry(ws, row)), entry_id

        # TIME_ENTRY_SPLIT names only the first half; the reconcile job pulled the second.
        assert mirrored[second_half][0]["duration_seconds"] == ws.entries.fields(before_split).duration

        clients = await _mirror(addon, "client", [client["id"], doomed["id"]])
        assert clients[client["id"]] == (_typed("client", ws.id, ws.clients[client["id"]]), False)
        assert clients[doomed["id"]][1] is True
        projects_m = await _mirror(addon, "project", [project["id"]])
        assert projects_m[project["id"]] == (_typed("project", ws.id, render.project_api(ws.projects[project["id"]])), False)
        tags_m = await _mirror(addon, "tag", [tag["id"]])
        assert tags_m[tag["id"]] == (_typed("tag", ws.id, ws.tags[tag["id"]]), False)


def _api_typed(ws: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """What the simulator's API serves now, mapped like the mirror maps it, per kind."""
    from clockify_core.simulator.api.deps import public

    return {
        "client": {c: _typed("client", ws.id, dict(r)) for c, r in ws.clients.items()},
        "project": {p: _typed("project", ws.id, render.project_api(r)) for p, r in ws.projects.items()},
        "task": {t: _typed("task", ws.id, render.task_api(ws, r)) for t, r in ws.tasks.items()},
        "tag": {t: _typed("tag", ws.id, dict(r)) for t, r in ws.tags.items()},
        "user": {u: _typed("user", ws.id, public(r)) for u, r in ws.users.items()},
    }


async def _live(addon: AddonHarness, kind: str) -> dict[str, dict[str, Any]]:
    table = table_for(kind)
    async with addon.runtime.sessions() as session:
        ids = (await session.execute(select(table.c.id).where(table.c.workspace_id == addon.workspace_id,
                                                              table.c.deleted_at.is_(None)))).scalars().all()
    return {row_id: typed for row_id, (typed, _) in (await _mirror(addon, kind, list(ids))).items()}


async def test_webhooks_without_refetch_then_a_repair_sync_equal_the_simulator(
    simulator: InProcessSimulator, pg_url: str
) -> None:
    """Bodies alone (no re-read) leave only what webhooks cannot know; one sync makes the mirror exact."""
    from clockify_core.jobs import queue
    from clockify_core.jobs.models import JobKind

    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url,
        mirror={"refetch": "never"},
    ) as addon:
        await addon.process()
        ws = simulator.sim.workspace(addon.workspace_id)
        ops = simulator.sim.ops
        known_client, noted_client = list(ws.clients)[:2]
        ops.update_client(ws, known_client, {"name": "Renamed Client"})
        ops.update_client(ws, noted_client, {"note": "pays late"})  # CLIENT_UPDATED cannot say so
        fresh = ops.create_client(ws, {"name": "Fresh Client", "note": "set through the API"})
        project = ops.create_project(ws, {"name": "Fidelity Project", "clientId": fresh["id"]})
        ops.update_project(ws, project["id"], {"note": "", "color": "#00FF00"})
        task = ops.create_task(ws, project["id"], {"name": "Fidelity Task"})
        ops.update_tag(ws, next(iter(ws.tags)), {"name": "renamed-tag"})
        member = next(u for u in ws.users if u != ws.owner_id)
        ops.set_user_status(ws, member, "INACTIVE")
        entry = ops.create_entry(ws, ws.owner_id, {"start": "2025-06-01T08:00:00Z", "end": "2025-06-01T09:00:00Z",
                                                   "description": "", "tagIds": []})
        ops.patch_entry(ws, entry, {"description": "named later"})
        await addon.process()

        # Webhooks alone: every row matches except what webhook bodies do not carry.
        api = _api_typed(ws)
        clients = await _live(addon, "client")
        assert clients[known_client] == api["client"][known_client]  # merged: the e-mail is kept
        assert clients[noted_client] == {**api["client"][noted_client], "note": None}
        assert clients[fresh["id"]] == {**api["client"][fresh["id"]], "note": None}  # NEW_CLIENT has no note
        assert (await _live(addon, "user"))[member] == api["user"][member]
        assert (await _live(addon, "project"))[project["id"]] == api["project"][project["id"]]
        entry_id = ws.entries.id_of(entry)
        mirrored_entry = (await _mirror(addon, "time_entry", [entry_id]))[entry_id][0]
        assert mirrored_entry == _typed("time_entry", ws.id, render.time_entry(ws, entry))

        async with addon.runtime.sessions.begin() as session:
            await queue.enqueue(session, addon.workspace_id, JobKind.SYNC, {"reason": "operator", "reference": True})
        await addon.process()

        api = _api_typed(ws)
        for kind, rows in api.items():
            assert await _live(addon, kind) == rows, kind
        assert (await _live(addon, "task"))[task["id"]] == api["task"][task["id"]]
        mirrored_entry = (await _mirror(addon, "time_entry", [entry_id]))[entry_id][0]
        assert mirrored_entry == _typed("time_entry", ws.id, render.time_entry(ws, entry))
