"""Retention: delete what has outlived its window, in small batches that never hold a table.

Each window is a setting (``RETENTION__*_DAYS``; 0 keeps rows forever). Every batch
is its own short transaction selecting at most ``batch_size`` keys, so deletes never
lock a table for long and a busy database is only ever asked for a little at a time.
Uninstalled workspaces whose ``purge_after`` has passed lose all their data here too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import ColumnElement, Table, delete, select, tuple_, update

from clockify_core.db.base import utcnow
from clockify_core.db.models import metadata
from clockify_core.explorer.models import ApiCall
from clockify_core.flows.models import FlowRun
from clockify_core.jobs.models import Job, JobStatus
from clockify_core.leases import take_lease
from clockify_core.lifecycle.models import Installation, InstallationStatus
from clockify_core.runtime import Runtime
from clockify_core.webhooks.models import InboxEvent, InboxStatus

log = structlog.get_logger(__name__)

# Rows that only describe an uninstalled workspace's history outlive its purge.
_KEEP_ON_PURGE = {"installations"}


async def delete_in_batches(
    runtime: Runtime, table: Table, condition: Callable[[], ColumnElement[bool]], *, label: str | None = None
) -> int:
    """Delete rows matching ``condition`` ``batch_size`` keys at a time; returns the count."""
    batch = runtime.settings.retention.batch_size
    keys = list(table.primary_key.columns)
    key = tuple_(*keys) if len(keys) > 1 else keys[0]
    removed = 0
    while True:
        chosen = select(*keys).where(condition()).limit(batch)
        async with runtime.sessions.begin() as session:
            result = await session.execute(delete(table).where(key.in_(chosen.scalar_subquery() if len(keys) == 1 else chosen)))
        count = int(getattr(result, "rowcount", 0) or 0)
        removed += count
        if count:
            runtime.metrics.retention_deleted.labels(label or table.name).inc(count)
        if count < batch or runtime.stop.is_set():
            return removed


def _older(days: int, now: datetime) -> datetime | None:
    return now - timedelta(days=days) if days > 0 else None


def _workspace_rows(table: Table, workspace_id: str) -> Callable[[], ColumnElement[bool]]:
    return lambda: table.c.workspace_id == workspace_id


async def purge_expired_workspaces(runtime: Runtime, now: datetime) -> int:
    """Remove the data of workspaces uninstalled with a retention period that has now passed."""
    async with runtime.sessions() as session:
        due = (
            await session.execute(
                select(Installation.workspace_id).where(
                    Installation.status == InstallationStatus.DELETED, Installation.purge_after <= now
                )
            )
        ).scalars().all()
    removed = 0
    for workspace_id in due:
        for table in reversed(metadata.sorted_tables):
            if "workspace_id" in table.c and table.name not in _KEEP_ON_PURGE:
                removed += await delete_in_batches(runtime, table, _workspace_rows(table, workspace_id))
        async with runtime.sessions.begin() as session:
            await session.execute(
                update(Installation).where(Installation.workspace_id == workspace_id).values(purge_after=None)
            )
        log.info("retention.workspace_purged", workspace_id=workspace_id)
    return removed


Condition = Callable[[], ColumnElement[bool]]


def _table(model: type[Any]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


async def run_retention(runtime: Runtime, *, now: datetime | None = None) -> dict[str, int]:
    """One retention pass over every table with a window; the counts removed per table."""
    now = now or utcnow()
    config = runtime.settings.retention
    inbox, calls, runs, jobs = _table(InboxEvent), _table(ApiCall), _table(FlowRun), _table(Job)
    finished = [JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED]
    windows: list[tuple[str, Table, int, Callable[[datetime], Condition]]] = [
        ("inbox_events", inbox, config.inbox_days,
         lambda c: lambda: (inbox.c.status == InboxStatus.DONE) & (inbox.c.processed_at < c)),
        ("dead_letters", inbox, config.dead_letter_days,
         lambda c: lambda: (inbox.c.status == InboxStatus.DEAD) & (inbox.c.received_at < c)),
        ("api_calls", calls, config.api_call_days, lambda c: lambda: calls.c.created_at < c),
        ("flow_runs", runs, config.flow_run_days,
         lambda c: lambda: (runs.c.started_at < c) & runs.c.finished_at.is_not(None)),
        ("jobs", jobs, config.job_days, lambda c: lambda: jobs.c.status.in_(finished) & (jobs.c.finished_at < c)),
    ]
    removed: dict[str, int] = {}
    for label, table, days, condition in windows:
        cutoff = _older(days, now)
        if cutoff is not None:
            removed[label] = await delete_in_batches(runtime, table, condition(cutoff), label=label)
    removed["uninstalled_workspaces"] = await purge_expired_workspaces(runtime, now)
    if any(removed.values()):
        log.info("retention.done", **removed)
    return removed


RETENTION_LEASE = "retention"


async def retention_loop(runtime: Runtime, stop: asyncio.Event) -> None:
    """Every ``interval_minutes``, the instance holding the retention lease runs one pass."""
    config = runtime.settings.retention
    interval = config.interval_minutes * 60.0
    never = asyncio.Event()
    while not stop.is_set():
        try:
            now = utcnow()
            async with runtime.sessions.begin() as session:
                # Held for the whole interval, so one instance cleans per round.
                leader = await take_lease(session, RETENTION_LEASE, runtime.instance_id, now=now, seconds=interval)
            if leader:
                await run_retention(runtime, now=now)
        except Exception:  # a failed pass is retried next round
            log.warning("retention.failed", exc_info=True)
        await runtime.idle(never, interval)
