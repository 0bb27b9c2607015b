"""Retention removes what outlived its window, in small batches, and nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from clockify_addon.app import PROFILE
from clockify_addon.settings import Settings
from clockify_core.db.base import utcnow
from clockify_core.explorer.models import ApiCall
from clockify_core.jobs.models import Job
from clockify_core.lifecycle.models import Installation
from clockify_core.mirror.models import TimeEntry
from clockify_core.observability.metrics import Metrics
from clockify_core.retention.service import run_retention
from clockify_core.runtime import Runtime, open_runtime
from clockify_core.webhooks.models import InboxEvent


@pytest.fixture
async def runtime(db_url: str) -> AsyncIterator[Runtime]:
    settings = Settings(database={"url": db_url, "run_migrations": False}, retention={"batch_size": 10})
    async with open_runtime(settings, PROFILE, Metrics()) as rt:
        yield rt


async def _count(runtime: Runtime, model: type, *where: object) -> int:
    async with runtime.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)))


async def test_windows_and_batches(runtime: Runtime) -> None:
    now = utcnow()
    old, recent = now - timedelta(days=40), now - timedelta(hours=1)
    async with runtime.sessions.begin() as s:
        s.add(Installation(workspace_id="ws", addon_id="a", status="ACTIVE"))
        for n in range(35):  # more than three batches of each
            for status, when in (("DONE", old), ("DONE", recent), ("DEAD", old), ("PENDING", old)):
                s.add(InboxEvent(workspace_id="ws", event_type="NEW_TAG", dedup_key=f"{status}{when}{n}", body="{}",
                                 status=status, received_at=when, processed_at=when if status == "DONE" else None))
            s.add(ApiCall(workspace_id="ws", source="explorer", method="GET", path="/x", created_at=old if n % 2 else recent))
            s.add(Job(workspace_id="ws", kind="sync", status="DONE", finished_at=old, created_at=old))
        s.add(Job(workspace_id="ws", kind="sync", status="RUNNING", created_at=old))
    removed = await run_retention(runtime, now=now)
    assert removed["inbox_events"] == 35
    assert removed["dead_letters"] == 35
    assert removed["api_calls"] == 17
    assert removed["jobs"] == 35
    assert await _count(runtime, InboxEvent, InboxEvent.status == "DONE") == 35  # the recent ones
    assert await _count(runtime, InboxEvent, InboxEvent.status == "PENDING") == 35  # never removed
    assert await _count(runtime, Job) == 1  # the running job stays
    text = runtime.metrics.render().decode()
    assert 'retention_rows_deleted_total{table="dead_letters"} 35.0' in text


async def test_zero_days_keeps_everything(db_url: str) -> None:
    settings = Settings(database={"url": db_url, "run_migrations": False},
                        retention={"inbox_days": 0, "dead_letter_days": 0, "api_call_days": 0, "flow_run_days": 0, "job_days": 0})
    async with open_runtime(settings, PROFILE, Metrics()) as rt:
        async with rt.sessions.begin() as s:
            s.add(InboxEvent(workspace_id="ws", event_type="NEW_TAG", dedup_key="k", body="{}", status="DONE",
                             received_at=utcnow() - timedelta(days=999), processed_at=utcnow() - timedelta(days=999)))
        removed = await run_retention(rt)
        assert set(removed.values()) == {0}


async def test_uninstalled_workspace_is_purged_after_its_retention(runtime: Runtime) -> None:
    now = utcnow()
    async with runtime.sessions.begin() as s:
        s.add(Installation(workspace_id="gone", addon_id="a", status="DELETED", purge_after=now - timedelta(minutes=1)))
        s.add(Installation(workspace_id="kept", addon_id="b", status="DELETED", purge_after=now + timedelta(days=1)))
        for ws in ("gone", "kept"):
            for n in range(25):
                s.add(TimeEntry(workspace_id=ws, id=f"te{n}", raw={}, written_by="sync"))
    removed = await run_retention(runtime, now=now)
    assert removed["uninstalled_workspaces"] == 25
    assert await _count(runtime, TimeEntry, TimeEntry.workspace_id == "gone") == 0
    assert await _count(runtime, TimeEntry, TimeEntry.workspace_id == "kept") == 25
    async with runtime.sessions() as s:
        gone = await s.get(Installation, "gone")
        assert gone is not None
        assert gone.purge_after is None


async def test_one_instance_cleans_per_round(db_url: str) -> None:
    """Two runtimes run the loop; the lease lets exactly one of them delete."""
    import asyncio

    from clockify_core.retention.service import retention_loop

    settings = Settings(database={"url": db_url, "run_migrations": False}, retention={"batch_size": 10})
    async with open_runtime(settings, PROFILE, Metrics()) as first, open_runtime(settings, PROFILE, Metrics()) as second:
        async with first.sessions.begin() as s:
            for n in range(5):
                s.add(InboxEvent(workspace_id="ws", event_type="NEW_TAG", dedup_key=f"k{n}", body="{}", status="DEAD",
                                 received_at=utcnow() - timedelta(days=90)))
        for rt in (first, second):
            rt.start("retention", retention_loop)
        for _ in range(100):
            if await _count(first, InboxEvent) == 0:
                break
            await asyncio.sleep(0.05)
        await first.shutdown()
        await second.shutdown()
        deleted = [
            sum(float(line.rsplit(" ", 1)[1]) for line in rt.metrics.render().decode().splitlines()
                if line.startswith("retention_rows_deleted_total{"))
            for rt in (first, second)
        ]
        assert sorted(deleted) == [0.0, 5.0]
