"""A webhook body and the API's representation of the same entity make the same mirror row.

For every typed kind the simulator renders each entity twice, as the API serves it and as
its webhook body (whose shape the first test holds to the samples in
../shared/clockify/samples). Both are written through the mirror writer:

* a row first written from a webhook equals the API's row, except the columns webhooks do
  not carry, which hold the documented default (``WEBHOOK_DEFAULTS``, docs/schema.md);
* a webhook update of a row the API wrote (bootstrap, then an event) equals the API's row
  exactly: what the body leaves out keeps its value.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clockify_core.catalog import EVENTS
from clockify_core.db import create_engine, create_session_factory
from clockify_core.mirror.writer import MirrorWriter, table_for
from clockify_core.simulator import render
from clockify_core.simulator.api.deps import public
from clockify_core.simulator.model import Workspace, membership_status
from clockify_core.simulator.testing import InProcessSimulator

SAMPLES = Path(__file__).parents[1] / "fixtures" / "samples"
BOOKKEEPING = {
    "workspace_id",
    "id",
    "raw",
    "deleted_at",
    "written_at",
    "written_by",
    "last_event",
    "kind",
}
# Columns a webhook body has no field for, and what a row first written from one holds.
WEBHOOK_DEFAULTS: dict[str, dict[str, Any]] = {
    "time_entry": {"type": "REGULAR"},
    "client": {"email": None, "note": None},
    "task": {"billable": None, "hourly_rate": None, "cost_rate": None},
}
Pair = tuple[
    str, dict[str, Any], str, str, dict[str, Any]
]  # kind, API body, created, updated, webhook body


def _user_event(record: dict[str, Any]) -> str:
    return (
        "USER_ACTIVATED_ON_WORKSPACE"
        if membership_status(record) == "ACTIVE"
        else "USER_DEACTIVATED_ON_WORKSPACE"
    )


def pairs(ws: Workspace) -> Iterator[Pair]:
    for row in range(0, ws.entries.rows_total, 20):
        yield (
            "time_entry",
            render.time_entry(ws, row),
            "NEW_TIME_ENTRY",
            "TIME_ENTRY_UPDATED",
            render.time_entry_webhook(ws, row),
        )
    for c in ws.clients.values():
        yield "client", dict(c), "NEW_CLIENT", "CLIENT_UPDATED", render.client_webhook(c)
    for p in ws.projects.values():
        yield (
            "project",
            render.project_api(p),
            "NEW_PROJECT",
            "PROJECT_UPDATED",
            render.project_webhook(ws, p),
        )
    for t in ws.tasks.values():
        yield "task", render.task_api(ws, t), "NEW_TASK", "TASK_UPDATED", render.task_webhook(ws, t)
    for t in ws.tags.values():
        yield "tag", dict(t), "NEW_TAG", "TAG_UPDATED", render.tag(t)
    for u in ws.users.values():
        yield "user", public(u), _user_event(u), _user_event(u), render.user_full(u)


WEBHOOK_SHAPES: dict[str, Callable[[Workspace], dict[str, Any]]] = {
    "NEW_TIME_ENTRY": lambda ws: render.time_entry_webhook(ws, 0),
    "NEW_CLIENT": lambda ws: render.client_webhook(next(iter(ws.clients.values()))),
    "NEW_PROJECT": lambda ws: render.project_webhook(ws, next(iter(ws.projects.values()))),
    "NEW_TASK": lambda ws: render.task_webhook(ws, next(iter(ws.tasks.values()))),
    "NEW_TAG": lambda ws: render.tag(next(iter(ws.tags.values()))),
    "USER_JOINED_WORKSPACE": lambda ws: render.user_full(next(iter(ws.users.values()))),
}


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(db_url)
    yield create_session_factory(engine)
    await engine.dispose()


async def _typed(
    sessions: async_sessionmaker[AsyncSession], kind: str, workspace_id: str
) -> dict[str, dict[str, Any]]:
    table = table_for(kind)
    async with sessions() as s:
        rows = (
            (await s.execute(select(table).where(table.c.workspace_id == workspace_id)))
            .mappings()
            .all()
        )
    return {row["id"]: {k: v for k, v in row.items() if k not in BOOKKEEPING} for row in rows}


def test_the_simulator_renders_webhook_bodies_in_the_samples_shape(
    simulator: InProcessSimulator,
) -> None:
    ws = simulator.workspace
    for event, render_body in WEBHOOK_SHAPES.items():
        sample = json.loads((SAMPLES / f"{event}.json").read_text())
        assert set(render_body(ws)) == set(sample), event


async def test_webhook_and_api_bodies_make_the_same_rows(
    simulator: InProcessSimulator, sessions: async_sessionmaker[AsyncSession]
) -> None:
    ws = simulator.workspace
    simulator.sim.ops.update_client(ws, next(iter(ws.clients)), {"note": "pays late"})
    all_pairs = list(pairs(ws))
    assert {p[0] for p in all_pairs} == {"time_entry", "client", "project", "task", "tag", "user"}
    async with sessions.begin() as s:
        writer = MirrorWriter(s)
        for kind, api, created, updated, hook in all_pairs:
            await writer.apply_snapshot("api", kind, api["id"], api, written_by="bootstrap")
            await writer.apply_event("hook", EVENTS[created], hook)
            await writer.apply_snapshot("both", kind, api["id"], api, written_by="bootstrap")
            await writer.apply_event("both", EVENTS[updated], hook)

    for kind in WEBHOOK_DEFAULTS.keys() | {"project", "tag", "user"}:
        from_api, from_hook, updated = [
            await _typed(sessions, kind, w) for w in ("api", "hook", "both")
        ]
        assert from_api, kind
        defaults = WEBHOOK_DEFAULTS.get(kind, {})
        for row_id, row in from_api.items():
            assert from_hook[row_id] == {**row, **defaults}, (kind, row_id)
            assert updated[row_id] == row, (kind, row_id)
        # The comparison means something: the API's rows hold values where webhooks have none.
        unknown = [c for c, default in defaults.items() if default is None]
        assert not unknown or any(
            row[c] is not None for c in unknown for row in from_api.values()
        ), kind
    entries = await _typed(sessions, "time_entry", "api")
    assert any(row["custom_fields"] for row in entries.values())
