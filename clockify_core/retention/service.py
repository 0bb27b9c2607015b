"""Retention: delete what has outlived its window, in small batches that never hold a table.

Each window is a setting (``RETENTION__*_DAYS``; 0 keeps rows forever). Every batch
is its own short transaction selecting at most ``batch_size`` keys, so deletes never
lock a table for long and a busy database is only ever asked for a little at a time.
Uninstalled workspaces whose ``purge_after`` has passed lose all their data here too.

One instance cleans per round: the ``retention`` lease in ``scheduler_leases`` lasts
``RETENTION__LEASE_SECONDS`` and the leader renews it while it works, so a dead leader
is replaced after that. The round itself is recorded in a second row (see
:data:`ROUND_MARKER`) that only a complete pass moves on: a pass cut short by a shutdown
or a crash is resumed by whichever instance leads next, at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import ColumnElement, Table, and_, delete, exists, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clockify_core.config import RetentionConfig
from clockify_core.db.base import utcnow
from clockify_core.db.purge import workspace_tables
from clockify_core.flows.models import FlowRun
from clockify_core.installations.models import Installation, InstallationStatus, UsedLifecycleToken
from clockify_core.jobs.models import Job, JobStatus
from clockify_core.leases import lease_holder, release_lease, take_lease
from clockify_core.observability.isolation import connection_lost, installation_failed
from clockify_core.openapi.models import ApiCall
from clockify_core.runtime import Runtime
from clockify_core.webhooks.models import InboxEvent, InboxStatus

log = structlog.get_logger(__name__)

Condition = Callable[[], ColumnElement[bool]]


@dataclass
class RetentionPass:
    """Rows removed per window, and whether every window ran to its end."""

    removed: dict[str, int] = field(default_factory=dict)
    complete: bool = True


def _halted(stop: asyncio.Event, halt: asyncio.Event | None) -> bool:
    return stop.is_set() or (halt is not None and halt.is_set())


async def delete_in_batches(
    runtime: Runtime, table: Table, condition: Condition, *, label: str | None = None, halt: asyncio.Event | None = None
) -> tuple[int, bool]:
    """Delete rows matching ``condition`` ``batch_size`` keys at a time.

    Returns the count and whether no matching row is left; shutdown (or ``halt``) ends
    the work between two batches with the second value false.
    """
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
        if count < batch:
            return removed, True
        if _halted(runtime.stop, halt):
            return removed, False


def _older(days: int, now: datetime) -> datetime | None:
    return now - timedelta(days=days) if days > 0 else None


def _workspace_rows(table: Table, workspace_id: str, now: datetime) -> Condition:
    # Every batch re-checks that the workspace is still uninstalled and due: a reinstall
    # that commits in the middle of a purge keeps what it has written since.
    i = _table(Installation)
    still_due = exists().where(
        i.c.workspace_id == workspace_id, i.c.status == InstallationStatus.DELETED, i.c.purge_after <= now
    )
    return lambda: (table.c.workspace_id == workspace_id) & still_due


DUE_PAGE = 200  # workspaces read per query: the due list is never held whole, however long


async def _due_workspaces(sessions: async_sessionmaker[AsyncSession], now: datetime) -> AsyncIterator[str]:
    """Uninstalled workspaces due for purging, oldest first, a page per short read."""
    last: tuple[datetime | None, str] | None = None
    while True:
        stmt = select(Installation.purge_after, Installation.workspace_id).where(
            Installation.status == InstallationStatus.DELETED, Installation.purge_after <= now
        ).order_by(Installation.purge_after, Installation.workspace_id).limit(DUE_PAGE)
        if last is not None:  # past the previous page (those whose purge failed stay due: skip them)
            stmt = stmt.where(or_(Installation.purge_after > last[0], and_(
                Installation.purge_after == last[0], Installation.workspace_id > last[1])))
        async with sessions() as session:
            page = (await session.execute(stmt)).all()
        for _purge_after, workspace_id in page:
            yield workspace_id
        if len(page) < DUE_PAGE:
            return
        last = (page[-1][0], page[-1][1])


async def purge_expired_workspaces(
    runtime: Runtime, now: datetime, *, halt: asyncio.Event | None = None
) -> tuple[int, bool]:
    """Remove the data of workspaces uninstalled with a retention period that has now passed.

    ``purge_after`` is cleared only once every table of the workspace is empty, so a purge
    cut short is picked up again by the next pass. A workspace whose purge fails is logged,
    counted and skipped (``observability/isolation.py``); the others are purged.
    """
    removed = 0
    async for workspace_id in _due_workspaces(runtime.sessions, now):
        try:
            count, done = await purge_workspace(runtime, workspace_id, now, halt=halt)
        except Exception as exc:
            if connection_lost(exc):
                raise
            # Its purge_after stays set: the next pass tries again, and the others go on now.
            installation_failed(runtime.metrics, "retention", workspace_id)
            continue
        removed += count
        if not done:
            return removed, False
    return removed, True


async def purge_workspace(
    runtime: Runtime, workspace_id: str, now: datetime, *, halt: asyncio.Event | None = None
) -> tuple[int, bool]:
    """Delete the data of one workspace found due for purging at ``now``, table by table.

    Each batch deletes only while the workspace is still uninstalled and due, so a
    reinstall committed after the workspace was found due loses nothing.
    """
    removed = 0
    # The tables an immediate purge at uninstall empties too (db/purge.py).
    for table in workspace_tables():
        count, done = await delete_in_batches(runtime, table, _workspace_rows(table, workspace_id, now), halt=halt)
        removed += count
        if not done:
            log.info("retention.purge_interrupted", workspace_id=workspace_id, table=table.name)
            return removed, False
    async with runtime.sessions.begin() as session:
        result = await session.execute(
            update(Installation)
            .where(Installation.workspace_id == workspace_id, Installation.status == InstallationStatus.DELETED)
            .values(purge_after=None)
        )
    if getattr(result, "rowcount", 0):
        log.info("retention.workspace_purged", workspace_id=workspace_id)
    return removed, True


def _table(model: type[Any]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _windows(config: RetentionConfig) -> list[tuple[str, Table, int, Callable[[datetime], Condition]]]:
    # Each predicate has an index of the same shape (alembic 2026_11_22_0006_retention_indexes).
    inbox, calls, runs, jobs = _table(InboxEvent), _table(ApiCall), _table(FlowRun), _table(Job)
    finished = [JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED]
    return [
        ("inbox_events", inbox, config.inbox_days,
         lambda c: lambda: (inbox.c.status == InboxStatus.DONE) & (inbox.c.processed_at < c)),
        ("dead_letters", inbox, config.dead_letter_days,
         lambda c: lambda: (inbox.c.status == InboxStatus.DEAD) & (inbox.c.received_at < c)),
        ("api_calls", calls, config.api_call_days, lambda c: lambda: calls.c.created_at < c),
        ("flow_runs", runs, config.flow_run_days,
         lambda c: lambda: (runs.c.started_at < c) & runs.c.finished_at.is_not(None)),
        ("jobs", jobs, config.job_days, lambda c: lambda: jobs.c.status.in_(finished) & (jobs.c.finished_at < c)),
    ]


async def retention_pass(runtime: Runtime, *, now: datetime | None = None, halt: asyncio.Event | None = None) -> RetentionPass:
    """One pass over every table with a window and every workspace due for purging."""
    now = now or utcnow()
    outcome = RetentionPass()
    for label, table, days, condition in _windows(runtime.settings.retention):
        cutoff = _older(days, now)
        if cutoff is None:
            continue
        if not outcome.complete:
            outcome.removed[label] = 0
            continue
        outcome.removed[label], outcome.complete = await delete_in_batches(
            runtime, table, condition(cutoff), label=label, halt=halt
        )
    # A used lifecycle token is remembered until its exp (plus leeway); the verifier refuses it after.
    used = _table(UsedLifecycleToken)
    outcome.removed["used_lifecycle_tokens"], outcome.complete = (
        (0, False) if not outcome.complete
        else await delete_in_batches(runtime, used, lambda: used.c.expires_at < now, halt=halt)
    )
    purged, done = (0, False) if not outcome.complete else await purge_expired_workspaces(runtime, now, halt=halt)
    outcome.removed["uninstalled_workspaces"] = purged
    outcome.complete = outcome.complete and done
    if any(outcome.removed.values()) or not outcome.complete:
        log.info("retention.done", complete=outcome.complete, **outcome.removed)
    return outcome


async def run_retention(runtime: Runtime, *, now: datetime | None = None) -> dict[str, int]:
    """One retention pass; the counts removed per table."""
    return (await retention_pass(runtime, now=now)).removed


RETENTION_LEASE = "retention"
# Not a lease but the round: its ``expires_at`` is when the next pass is due and its
# ``last_tick_at`` when the last complete one started. Kept in the lease table so it
# needs no table of its own and operators see it beside the leader.
ROUND_MARKER = "retention:round"


async def _keep_lease(runtime: Runtime, halt: asyncio.Event) -> None:
    """Renew the lease until ``halt``; losing it halts the pass so two leaders never overlap for long."""
    seconds = runtime.settings.retention.lease_seconds
    while not halt.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(halt.wait(), timeout=seconds / 3)
        if halt.is_set():
            return
        try:
            async with runtime.sessions.begin() as session:
                held = await take_lease(session, RETENTION_LEASE, runtime.instance_id, seconds=seconds)
        except Exception:
            log.warning("retention.lease_renewal_failed", exc_info=True)
            held = False
        if not held:
            log.warning("retention.lease_lost")
            halt.set()


async def _lead_pass(runtime: Runtime, now: datetime) -> RetentionPass:
    halt = asyncio.Event()
    renewer = asyncio.create_task(_keep_lease(runtime, halt))
    try:
        return await retention_pass(runtime, now=now, halt=halt)
    finally:
        halt.set()
        await renewer


async def _round_due(sessions: async_sessionmaker[AsyncSession], now: datetime) -> bool:
    async with sessions() as session:
        marker = await lease_holder(session, ROUND_MARKER)
    return marker is None or marker.expires_at <= now


async def _close_round(runtime: Runtime, started: datetime) -> None:
    interval = runtime.settings.retention.interval_minutes * 60.0
    async with runtime.sessions.begin() as session:
        # Holder and name are equal, so the marker always moves (the lease rule never refuses it).
        await take_lease(session, ROUND_MARKER, ROUND_MARKER, now=started, seconds=interval)


async def retention_loop(runtime: Runtime, stop: asyncio.Event) -> None:
    """Take or renew the lease every third of it; the holder runs a pass when the round is due."""
    config = runtime.settings.retention
    tick = min(config.interval_minutes * 60.0, config.lease_seconds / 3)
    never = asyncio.Event()
    while not stop.is_set():
        try:
            now = utcnow()
            async with runtime.sessions.begin() as session:
                leader = await take_lease(session, RETENTION_LEASE, runtime.instance_id, seconds=config.lease_seconds)
            if leader and await _round_due(runtime.sessions, now):
                outcome = await _lead_pass(runtime, now)
                if outcome.complete:
                    await _close_round(runtime, now)
        except Exception:  # a failed pass is retried next tick: its round stays due
            log.warning("retention.failed", exc_info=True)
        await runtime.idle(never, tick)
    # Not in a finally: a cancelled (crashed) loop leaves the lease to expire, like a dead process.
    try:
        async with runtime.sessions.begin() as session:
            await release_lease(session, RETENTION_LEASE, runtime.instance_id)
    except Exception:
        log.warning("retention.lease_release_failed", exc_info=True)
