"""The sync scheduler: one leader across every instance queues incremental syncs.

Every process runs :func:`scheduler_loop`; each tick tries to take or renew the lease
row in ``scheduler_leases`` and only the holder schedules. Taking the lease, reading
who is due and queueing their ``sync`` jobs happen in **one transaction**: the lease
``UPDATE`` locks its row until commit, so a second instance blocks on it and then sees
a live lease held by someone else. A leader that dies stops renewing and another takes
over after ``sync.lease_seconds``; one that shuts down releases it at once.

The lease's expiry is judged on the database's clock (``statement_timestamp()`` on
PostgreSQL), so instances with skewed clocks still agree on who leads.

Why a lease row rather than ``pg_advisory_lock``: it works on SQLite too (several
processes on one file), it needs no connection pinned for the leader's lifetime (and
so survives poolers in transaction mode and database restarts), and the holder and its
last tick are visible to operators in the table. The jobs it queues are executed by
whichever instance's job loop claims them first.

A workspace is due when its ``sync_state`` row of kind ``*`` says ``next_run_at`` has
passed, it is neither parked nor already syncing or bootstrapping, and its settings
allow it (``sync_enabled``, ``sync_interval_minutes``; Free-plan workspaces at most every
``sync.free_plan_interval_minutes``, plus ``sync.daily_times``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta

import structlog
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core.catalog import FREE_PLAN
from clockify_core.config import SyncConfig
from clockify_core.installations.models import Installation, InstallationStatus
from clockify_core.installations.settings import SYNC_INTERVAL_MINUTES, flag, number
from clockify_core.jobs import queue
from clockify_core.jobs.models import Job, JobKind
from clockify_core.leases import database_now, release_lease, take_lease
from clockify_core.observability.isolation import connection_lost, installation_failed
from clockify_core.runtime import Runtime
from clockify_core.sync import state
from clockify_core.sync.models import WORKSPACE_KIND, SyncState

log = structlog.get_logger(__name__)

LEASE = "sync-scheduler"
_BLOCKING = (JobKind.SYNC.value, JobKind.BOOTSTRAP.value)
# Installations read per query by a tick (docs/sync.md): memory stays flat in their number.
PAGE = 500


def enabled(installation: Installation) -> bool:
    return flag(installation.settings, "sync_enabled")


def interval_minutes(config: SyncConfig, installation: Installation) -> int:
    # Within the setting's range whatever the row holds (installations/settings.py); absent: the deployment's default.
    minutes = number(installation.settings, SYNC_INTERVAL_MINUTES, config.interval_minutes)
    if minutes and installation.subscription_plan == FREE_PLAN:
        # 30 requests an hour: an incremental run costs about five.
        minutes = max(minutes, config.free_plan_interval_minutes)
    return minutes


def next_run(config: SyncConfig, installation: Installation, now: datetime) -> datetime | None:
    """When the workspace should sync next after ``now``; None when it never should."""
    if not enabled(installation):
        return None
    candidates = []
    minutes = interval_minutes(config, installation)
    if minutes:
        candidates.append(now + timedelta(minutes=minutes))
    for daily in config.daily_times:
        hours, minute = (int(part) for part in daily.split(":"))
        at = datetime.combine(now.astimezone(UTC).date(), time(hours, minute), tzinfo=UTC)
        candidates.append(at if at > now else at + timedelta(days=1))
    return min(candidates) if candidates else None


async def replan(session: AsyncSession, config: SyncConfig, installation: Installation, now: datetime) -> None:
    """After the workspace's settings changed (SETTINGS_UPDATED): a run already planned comes
    no later than the new interval allows from ``now``. A shorter interval so takes effect at
    once, not after the run planned under the old one; a longer one waits for that run."""
    row = await session.get(SyncState, (installation.workspace_id, WORKSPACE_KIND))
    following = next_run(config, installation, now)
    if row is not None and row.next_run_at is not None and following is not None and following < row.next_run_at:
        row.next_run_at = following


def _due(config: SyncConfig, installation: Installation, row: SyncState | None, busy: bool, now: datetime) -> datetime | None:
    """The workspace's next run after this one when it is due now; None when it is not."""
    if busy or not enabled(installation):
        return None
    if row is not None and row.parked_until is not None and row.parked_until > now:
        return None
    if row is not None and row.next_run_at is not None and row.next_run_at > now:
        return None
    return next_run(config, installation, now)


async def tick(runtime: Runtime, *, now: datetime | None = None) -> list[str] | None:
    """One scheduling round; the workspaces queued, or None when another instance leads.

    The lease is judged on the database's clock whatever ``now`` says; ``now`` (default:
    the database's clock too) only decides which workspaces are due. Each workspace is
    scheduled on its own: one that fails is logged, counted and skipped
    (``observability/isolation.py``), the others are queued in the same round.
    """
    config = runtime.settings.sync
    scheduled: list[str] = []
    async with runtime.sessions.begin() as session:
        if not await take_lease(session, LEASE, runtime.instance_id, seconds=config.lease_seconds):
            return None
        now = now or await database_now(session)
        async for installations, rows, busy in _candidates(session, now):
            scheduled += await _schedule_page(runtime, session, installations, rows, busy, now)
    if scheduled:
        runtime.metrics.sync_scheduled.inc(len(scheduled))
        runtime.jobs_wakeup.set()
        log.info("sync.scheduled", workspaces=len(scheduled))
    return scheduled


async def _candidates(
    session: AsyncSession, now: datetime
) -> AsyncIterator[tuple[list[Installation], dict[str, SyncState], set[str]]]:
    """Active installations whose schedule may be due, :data:`PAGE` at a time (by workspace id).

    The database leaves out those whose ``next_run_at`` is ahead or that are parked, so a
    tick reads what is due rather than every installation; each page comes with its
    ``sync_state`` rows and which of its workspaces are syncing or bootstrapping. Pages
    leave the session once scheduled, so memory does not grow with the installations.
    """
    after = ""
    while True:
        page = list((await session.execute(
            select(Installation)
            .outerjoin(SyncState, and_(SyncState.workspace_id == Installation.workspace_id,
                                       SyncState.kind == WORKSPACE_KIND))
            .where(
                Installation.status == InstallationStatus.ACTIVE,
                Installation.workspace_id > after,
                or_(SyncState.next_run_at.is_(None), SyncState.next_run_at <= now),
                or_(SyncState.parked_until.is_(None), SyncState.parked_until <= now),
            )
            .order_by(Installation.workspace_id)
            .limit(PAGE)
        )).scalars())
        if not page:
            return
        ids = [i.workspace_id for i in page]
        busy = set((await session.execute(
            select(Job.workspace_id).where(Job.workspace_id.in_(ids), Job.kind.in_(_BLOCKING),
                                           Job.status.in_(queue.ACTIVE_STATUSES))
        )).scalars())
        rows = {s.workspace_id: s for s in (await session.execute(
            select(SyncState).where(SyncState.workspace_id.in_(ids), SyncState.kind == WORKSPACE_KIND)
        )).scalars()}
        yield page, rows, busy
        session.expunge_all()
        if len(page) < PAGE:
            return
        after = ids[-1]


async def _schedule_page(
    runtime: Runtime, session: AsyncSession, installations: list[Installation], rows: dict[str, SyncState],
    busy: set[str], now: datetime,
) -> list[str]:
    config = runtime.settings.sync
    scheduled: list[str] = []
    for installation in installations:
        ws = installation.workspace_id
        try:
            following = _due(config, installation, rows.get(ws), ws in busy, now)
            if following is None:
                continue
            # A savepoint of its own: a write refused for this workspace is undone alone.
            async with session.begin_nested():
                await queue.enqueue(session, ws, JobKind.SYNC, {"reason": "schedule"})
                await state.set_fields(session, ws, WORKSPACE_KIND, next_run_at=following)
        except Exception as exc:
            if connection_lost(exc):
                raise
            installation_failed(runtime.metrics, "sync_scheduler", ws)
            continue
        scheduled.append(ws)
    return scheduled


async def scheduler_loop(runtime: Runtime, stop: asyncio.Event) -> None:
    """Tick every ``sync.tick_seconds`` until ``stop``; release the lease on the way out."""
    never = asyncio.Event()
    try:
        while not stop.is_set():
            try:
                scheduled = await tick(runtime)
                runtime.metrics.scheduler_leader.set(0 if scheduled is None else 1)
            except Exception:  # database blips: log and try again next tick
                log.warning("sync.scheduler_error", exc_info=True)
            await runtime.idle(never, runtime.settings.sync.tick_seconds)
    finally:
        runtime.metrics.scheduler_leader.set(0)
        try:
            async with runtime.sessions.begin() as session:
                await release_lease(session, LEASE, runtime.instance_id)
        except Exception:
            log.warning("sync.lease_release_failed", exc_info=True)
