"""Shared pieces of the sync tests: a small simulator, mirror-vs-simulator comparisons."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import clockify_addon.app
import clockify_addon.settings
from clockify_core.jobs import queue
from clockify_core.jobs.models import Job
from clockify_core.jobs.worker import JobContext
from clockify_core.mirror.mapping import row_values
from clockify_core.mirror.models import Client, Project, Tag, Task, TimeEntry, User
from clockify_core.simulator import render
from clockify_core.simulator.api.deps import public
from clockify_core.simulator.config import DataScale, SimulatorConfig
from clockify_core.simulator.entries import RUNNING
from clockify_core.simulator.model import Workspace
from clockify_core.simulator.testing import InProcessSimulator, small_config
from clockify_core.testing.addon import AddonHarness, installed_addon

# Bootstrap reaches back far enough for the simulator's whole (fixed-anchor) history. These
# tests pin what bootstrap itself does, so the history backfill it queues by default is off
# (tests/sync/test_history.py proves it).
SYNC = {"bootstrap_days": 3650, "backfill_window": "year", "batch_rows": 250, "concurrency": 4,
        "history_backfill": False}
OPERATOR_KEY = "operator-key-for-tests-0123456789"


async def run_operator_job(addon: AddonHarness, what: str, **body: object) -> Job:
    """Ask the operator API for a ``sync`` or ``backfill``, work the queue, and return the job, DONE."""
    r = await addon.client.post(f"/api/operator/workspaces/{addon.workspace_id}/{what}", json=body,
                                headers={"X-API-Key": OPERATOR_KEY})
    assert r.status_code == 202, r.text
    await addon.process()
    async with addon.runtime.sessions() as s:
        job = await s.get(Job, r.json()["job_id"])
    assert job is not None
    assert job.status == "DONE", job.error
    return job

KEY_COLUMNS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "time_entry": (TimeEntry, ("user_id", "project_id", "task_id", "description", "start_at", "end_at",
                               "duration_seconds", "billable", "is_locked", "type", "tag_ids", "hourly_rate",
                               "cost_rate", "currency", "custom_fields")),
    "project": (Project, ("name", "client_id", "billable", "archived", "is_public", "color", "hourly_rate")),
    "client": (Client, ("name", "archived", "email")),
    "tag": (Tag, ("name", "archived")),
    "task": (Task, ("project_id", "name", "status", "assignee_ids")),
    "user": (User, ("name", "email", "status")),
}


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return small_config(scale=DataScale(workspaces=2, users=6, projects=8, time_entries=900, years=1.5,
                                        running_timers=2, user_groups=3, clients=4, tags=6))


def sim_bodies(ws: Workspace, kind: str) -> list[dict[str, Any]]:
    """The entities of ``kind`` as the simulator's API serves them now."""
    if kind == "time_entry":
        return [render.time_entry(ws, row) for row in ws.entries.by_start.rows]
    if kind == "project":
        return [render.project_api(p) for p in ws.projects.values()]
    table = {"client": ws.clients, "tag": ws.tags, "task": ws.tasks, "user": ws.users}[kind]
    return [public(r) for r in table.values()]


def _canon(value: Any) -> Any:
    if isinstance(value, list):
        return sorted((_canon(v) for v in value), key=repr)
    if isinstance(value, dict):
        return tuple(sorted((k, _canon(v)) for k, v in value.items()))
    return value


def keyed(kind: str, rows: Iterable[Mapping[str, Any]]) -> dict[str, tuple[Any, ...]]:
    columns = KEY_COLUMNS[kind][1]
    return {str(r["id"]): tuple(_canon(r.get(c)) for c in columns) for r in rows}


def expected(ws: Workspace, kind: str) -> dict[str, tuple[Any, ...]]:
    return keyed(kind, (row_values(kind, ws.id, str(b["id"]), b) for b in sim_bodies(ws, kind)))


async def mirrored(session: AsyncSession, workspace_id: str, kind: str) -> dict[str, tuple[Any, ...]]:
    model, columns = KEY_COLUMNS[kind]
    result = await session.execute(
        select(model).where(model.workspace_id == workspace_id, model.deleted_at.is_(None))
    )
    return keyed(kind, ({"id": r.id, **{c: getattr(r, c) for c in columns}} for r in result.scalars()))


def checksum(rows: dict[str, tuple[Any, ...]]) -> str:
    digest = hashlib.sha256()
    for key in sorted(rows):
        digest.update(repr((key, rows[key])).encode())
    return digest.hexdigest()


def assert_same(kind: str, mirror: dict[str, tuple[Any, ...]], sim: dict[str, tuple[Any, ...]]) -> None:
    missing, extra = set(sim) - set(mirror), set(mirror) - set(sim)
    differ = [k for k in set(sim) & set(mirror) if sim[k] != mirror[k]]
    detail = {"missing": sorted(missing)[:5], "extra": sorted(extra)[:5],
              "differ": [(k, mirror[k], sim[k]) for k in differ[:3]]}
    assert (len(mirror), checksum(mirror)) == (len(sim), checksum(sim)), (kind, detail)


RAW_COLUMNS = ("user_id", "project_id", "start_at", "end_at", "duration_seconds", "billable", "tag_ids")


def raw_entries(ws: Workspace) -> dict[str, tuple[Any, ...]]:
    """Key columns of every live entry read straight from the simulator's storage.

    Independent of both the API rendering and our mapping (``row_values``), so a mapping
    bug cannot cancel out the way it does in :func:`expected`.
    """
    store, out = ws.entries, {}
    for row in store.by_start.rows:
        start, duration = store.start[row], store.duration[row]
        running = duration == RUNNING
        out[store.id_of(row)] = (
            ws.user_ix.ids[store.user[row]],
            ws.project_ix.id(store.project[row]),
            datetime.fromtimestamp(start, UTC),
            None if running else datetime.fromtimestamp(start + duration, UTC),
            None if running else duration,
            store.is_billable(row),
            tuple(sorted(ws.tag_ix.ids[t] for t in store.tag_sets[store.tags[row]])),
        )
    return out


async def assert_raw_match(session: AsyncSession, ws: Workspace) -> None:
    """The mirror's live time entries carry the simulator's ids and key columns, and no other row exists."""
    rows = (await session.execute(select(TimeEntry).where(TimeEntry.workspace_id == ws.id))).scalars().all()
    live = {r.id: (r.user_id, r.project_id, r.start_at, r.end_at, r.duration_seconds, r.billable,
                   tuple(sorted(r.tag_ids or ()))) for r in rows if r.deleted_at is None}
    raw = raw_entries(ws)
    assert set(live) == set(raw), (sorted(set(raw) - set(live))[:5], sorted(set(live) - set(raw))[:5])
    differ = [(k, live[k], raw[k]) for k in raw if live[k] != raw[k]]
    assert not differ, differ[:3]
    # Tombstones are only of entries the simulator no longer has.
    assert not {r.id for r in rows if r.deleted_at is not None} & set(raw)


class Recorder(httpx.AsyncBaseTransport):
    """Passes every outbound request to the simulator and remembers it (what was asked, how often)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    def time_entry_reads(self) -> Counter[tuple[str, ...]]:
        """(window start, source, user or page) -> times asked, over every time-entry listing."""
        seen: Counter[tuple[str, ...]] = Counter()
        for r in self.requests:
            if r.url.path.endswith("/reports/detailed"):
                body = orjson.loads(r.content)
                seen[(body["dateRangeStart"][:19], "report", str(body["detailedFilter"]["page"]))] += 1
            elif "/user/" in r.url.path and r.url.path.endswith("/time-entries"):
                user = r.url.path.split("/user/")[1].split("/")[0]
                seen[(r.url.params["start"][:19], f"user:{user}", r.url.params["page"])] += 1
        return seen


def record(simulator: InProcessSimulator) -> Recorder:
    """Put a :class:`Recorder` between the add-on and the simulator (call before installing the add-on)."""
    recorder = Recorder(simulator.transport)
    simulator.transport = recorder
    return recorder


@asynccontextmanager
async def job_context(simulator: InProcessSimulator, pg_url: str) -> AsyncIterator[tuple[AddonHarness, JobContext]]:
    """The add-on installed (no scheduler) and a claimed job of its workspace to write under."""
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url,
        sync={**SYNC, "scheduler": False},
    ) as addon:
        runtime = addon.runtime
        async with runtime.sessions.begin() as session:
            await queue.enqueue(session, addon.workspace_id, "test_job")
        async with runtime.sessions.begin() as session:
            claimed = await queue.claim(session, worker_id=runtime.instance_id, kinds=("test_job",), lease_seconds=60)
        assert claimed is not None
        yield addon, JobContext(runtime, claimed, lease_seconds=60)
