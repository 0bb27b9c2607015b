"""Retention removes what outlived its window, in small batches, and nothing else."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select

from clockify_addon.app import PROFILE
from clockify_addon.settings import Settings
from clockify_core.db.base import utcnow
from clockify_core.flows.models import Flow, FlowRun
from clockify_core.installations.models import Installation
from clockify_core.jobs.models import Job
from clockify_core.leases import lease_holder, take_lease
from clockify_core.mirror.models import TimeEntry
from clockify_core.observability.metrics import Metrics
from clockify_core.openapi.models import ApiCall
from clockify_core.retention.service import (
    RETENTION_LEASE,
    ROUND_MARKER,
    purge_workspace,
    retention_loop,
    retention_pass,
    run_retention,
)
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


@contextmanager
def deletes(runtime: Runtime, on_delete: Any = None) -> Iterator[list[str]]:
    """Every DELETE statement the runtime's engine sends, in order."""
    seen: list[str] = []

    def before(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            seen.append(statement)
            if on_delete is not None:
                on_delete(len(seen))

    engine = runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


async def test_flow_run_window_removes_only_old_finished_runs(runtime: Runtime) -> None:
    now = utcnow()
    old, recent = now - timedelta(days=40), now - timedelta(hours=1)
    async with runtime.sessions.begin() as s:
        s.add(Flow(id="f1", workspace_id="ws", name="f", trigger={"events": ["NEW_TAG"]}, actions=[]))
        await s.flush()
        for _n in range(35):
            s.add(FlowRun(flow_id="f1", workspace_id="ws", matched=True, status="SUCCEEDED", created_at=old,
                          started_at=old, finished_at=old))
            s.add(FlowRun(flow_id="f1", workspace_id="ws", matched=True, status="SUCCEEDED", created_at=recent,
                          started_at=recent, finished_at=recent))
        # Old but unfinished: a run still in flight is never removed under its executor.
        s.add(FlowRun(flow_id="f1", workspace_id="ws", matched=True, status="RUNNING", created_at=old, started_at=old))
    with deletes(runtime) as seen:
        removed = await run_retention(runtime, now=now)
    assert removed["flow_runs"] == 35
    assert await _count(runtime, FlowRun, FlowRun.started_at < now - timedelta(days=30)) == 1
    assert await _count(runtime, FlowRun, FlowRun.status == "RUNNING") == 1
    assert await _count(runtime, FlowRun) == 36
    # 35 rows at batch size 10: three full batches and a short one, each its own statement.
    assert len([statement for statement in seen if "flow_runs" in statement]) == 4


async def test_each_batch_is_one_short_delete(runtime: Runtime) -> None:
    old = utcnow() - timedelta(days=90)
    async with runtime.sessions.begin() as s:
        for n in range(35):
            s.add(InboxEvent(workspace_id="ws", event_type="NEW_TAG", dedup_key=f"d{n}", body="{}", status="DEAD",
                             received_at=old))
    with deletes(runtime) as seen:
        removed = await run_retention(runtime)
    assert removed["dead_letters"] == 35
    inbox_deletes = [statement for statement in seen if "inbox_events" in statement]
    assert len(inbox_deletes) >= 4  # never one statement for everything
    assert all("LIMIT" in statement.upper() for statement in inbox_deletes)


async def test_interrupted_purge_resumes_on_the_next_pass(runtime: Runtime) -> None:
    now = utcnow()
    async with runtime.sessions.begin() as s:
        s.add(Installation(workspace_id="gone", addon_id="a", status="DELETED", purge_after=now - timedelta(minutes=1)))
        for n in range(25):
            s.add(TimeEntry(workspace_id="gone", id=f"te{n}", raw={}, written_by="sync"))
    # Shutdown arrives while the first batch of the purge is being deleted.
    with deletes(runtime, on_delete=lambda n: runtime.stop.set()):
        first = await retention_pass(runtime, now=now)
    assert not first.complete
    assert await _count(runtime, TimeEntry, TimeEntry.workspace_id == "gone") == 15
    async with runtime.sessions() as s:
        gone = await s.get(Installation, "gone")
        assert gone is not None
        assert gone.purge_after is not None

    runtime.stop.clear()  # the next process (or pass) runs to the end
    second = await retention_pass(runtime, now=now)
    assert second.complete
    assert second.removed["uninstalled_workspaces"] == 15
    assert await _count(runtime, TimeEntry, TimeEntry.workspace_id == "gone") == 0
    async with runtime.sessions() as s:
        gone = await s.get(Installation, "gone", populate_existing=True)
        assert gone is not None
        assert gone.purge_after is None


async def test_a_reinstall_after_the_workspace_was_found_due_loses_nothing(runtime: Runtime) -> None:
    now = utcnow()
    async with runtime.sessions.begin() as s:
        s.add(Installation(workspace_id="back", addon_id="a", status="DELETED", purge_after=now - timedelta(minutes=1)))
        for n in range(25):
            s.add(TimeEntry(workspace_id="back", id=f"te{n}", raw={}, written_by="sync"))
    # A pass found "back" due; before its deletes run, Clockify installs the add-on again.
    async with runtime.sessions.begin() as s:
        back = await s.get(Installation, "back")
        assert back is not None
        back.status, back.purge_after = "ACTIVE", None
    with deletes(runtime) as sent:
        assert await purge_workspace(runtime, "back", now) == (0, True)
    assert sent  # it did try, table by table
    assert await _count(runtime, TimeEntry, TimeEntry.workspace_id == "back") == 25
    async with runtime.sessions() as s:
        back = await s.get(Installation, "back", populate_existing=True)
        assert back is not None
        assert (back.status, back.purge_after) == ("ACTIVE", None)


def _lease_settings(db_url: str) -> Settings:
    return Settings(database={"url": db_url, "run_migrations": False},
                    retention={"batch_size": 10, "lease_seconds": 0.6, "interval_minutes": 60})


async def _holder(runtime: Runtime, name: str = RETENTION_LEASE) -> Any:
    async with runtime.sessions() as s:
        return await lease_holder(s, name)


async def _eventually(check: Any, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def test_leader_holds_a_short_lease_and_marks_the_round(db_url: str) -> None:
    async with open_runtime(_lease_settings(db_url), PROFILE, Metrics()) as rt:
        async with rt.sessions.begin() as s:
            s.add(InboxEvent(workspace_id="ws", event_type="NEW_TAG", dedup_key="k", body="{}", status="DEAD",
                             received_at=utcnow() - timedelta(days=90)))
        rt.start("retention", retention_loop)

        async def cleaned() -> bool:
            return await _count(rt, InboxEvent) == 0 and await _holder(rt, ROUND_MARKER) is not None

        await _eventually(cleaned)
        lease = await _holder(rt)
        assert lease.holder == rt.instance_id
        # The lease is the short one, renewed each tick, not the whole hour between passes.
        assert lease.expires_at <= utcnow() + timedelta(seconds=0.6)
        marker = await _holder(rt, ROUND_MARKER)
        assert timedelta(minutes=59) < marker.expires_at - marker.last_tick_at <= timedelta(minutes=60)
        await rt.shutdown()
        released = await _holder(rt)
        assert released.expires_at < utcnow()  # a clean shutdown hands over at once


async def test_dead_leader_is_replaced_after_the_lease_and_its_pass_resumed(db_url: str) -> None:
    """A leader killed before finishing its pass: another instance takes over after
    ``lease_seconds`` (not the hour-long interval) and runs the pass the round still owes."""
    settings = _lease_settings(db_url)
    async with open_runtime(settings, PROFILE, Metrics()) as rt:
        async with rt.sessions.begin() as s:
            # What a leader leaves behind when it dies mid-pass: a live lease, no round marker.
            assert await take_lease(s, RETENTION_LEASE, "dead-host:1:abc", now=utcnow(), seconds=0.6)
            for n in range(15):
                s.add(InboxEvent(workspace_id="ws", event_type="NEW_TAG", dedup_key=f"k{n}", body="{}", status="DEAD",
                                 received_at=utcnow() - timedelta(days=90)))
        rt.start("retention", retention_loop)

        async def taken_over() -> bool:
            lease = await _holder(rt)
            return bool(lease.holder == rt.instance_id) and await _count(rt, InboxEvent) == 0

        await _eventually(taken_over)  # within seconds: the lease ran out, the interval (an hour) did not
        await rt.shutdown()


async def test_a_long_pass_keeps_renewing_its_lease(db_url: str) -> None:
    settings = _lease_settings(db_url)
    async with open_runtime(settings, PROFILE, Metrics()) as rt:
        async with rt.sessions.begin() as s:
            for n in range(60):
                s.add(InboxEvent(workspace_id="ws", event_type="NEW_TAG", dedup_key=f"k{n}", body="{}", status="DEAD",
                                 received_at=utcnow() - timedelta(days=90)))
        expiries = []

        def slow_batch(_n: int) -> None:
            # Each batch outlasts half the lease (blocking on purpose: a slow database).
            time.sleep(0.35)

        with deletes(rt, on_delete=slow_batch):
            rt.start("retention", retention_loop)

            async def done() -> bool:
                lease = await _holder(rt)
                if lease is not None and lease.holder == rt.instance_id:
                    expiries.append(lease.expires_at)
                return await _holder(rt, ROUND_MARKER) is not None

            await _eventually(done, seconds=20)
        assert await _count(rt, InboxEvent) == 0
        # Each batch outlasts half the 0.6 s lease: the pass kept it only by renewing, forward each time.
        assert len(set(expiries)) >= 3
        assert expiries == sorted(expiries)
        await rt.shutdown()
