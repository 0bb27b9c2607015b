"""The job queue: enqueue in the caller's transaction, claim with a lease, heartbeat, finish.

A job is a row. Enqueueing it in the transaction that decided it (an INSTALLED
handler, a scheduler tick) makes the decision durable: a crash after commit still
leaves the job to run. Claims take a lease that running jobs renew; a job whose
worker died is claimed again once its lease expires, and resumes from its cursor.
At most one job of a kind runs per workspace at a time.

Which due job a claim takes (docs/sync.md, "Fairness"): the one of highest
:data:`PRIORITY` (webhook removal, then registrations and first bootstraps by install
time, then syncs, then history backfills), among equals the one due longest (``run_after``, then ``id``), skipping
workspaces that already run ``worker.workspace_concurrency`` jobs. A long bootstrap or
backfill gives its worker back after a slice (``sync.slice_seconds``): it goes back to
the queue with ``run_after`` now, behind every job that was due before, so other
workspaces' jobs are claimed in between, round-robin. The rule is in the claim's SQL, so
any number of instances agree on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, case, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core.db.base import utcnow
from clockify_core.db.dialect import is_postgres, skip_locked
from clockify_core.db.queue import LeasedQueue
from clockify_core.installations.models import Installation, InstallationStatus
from clockify_core.jobs.models import Job, JobKind, JobStatus

JOBS: Table = Job.__table__  # type: ignore[assignment]  # the declarative __table__ is a Table
QUEUE = LeasedQueue(JOBS, waiting=JobStatus.QUEUED, running=JobStatus.RUNNING, due_at="run_after")

# These must run whatever state the installation is in (they clean up after it).
RUNS_WHEN_INACTIVE = frozenset({JobKind.UNREGISTER_WEBHOOKS.value})
ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)

# Lower is claimed first. Webhook (un)registration is a request or two; a first bootstrap
# makes a new workspace's mirror usable; syncs keep mirrors fresh; a history backfill
# only ever takes what is left.
PRIORITY: dict[str, int] = {
    JobKind.UNREGISTER_WEBHOOKS.value: 0,
    # Registration ranks with the first bootstrap, not above it: for an add-on with many
    # events it is dozens of requests, and ranked first a burst of N installs would register
    # all N before any workspace got its data. Equal, they go by install time, each workspace's
    # registration just before its bootstrap (enqueued together, one job per workspace at once).
    JobKind.REGISTER_WEBHOOKS.value: 1,
    JobKind.BOOTSTRAP.value: 1,
    JobKind.SYNC.value: 2,
    JobKind.RECONCILE.value: 2,
    JobKind.BACKFILL.value: 3,
}
DEFAULT_PRIORITY = 2
# PostgreSQL: the first key of the advisory locks claims take per workspace, and how many
# candidates one claim tries before it reports nothing due.
_CLAIM_LOCK_SPACE = 0x6A6F6273  # "jobs"
_CLAIM_TRIES = 8


def priority(kind: ColumnElement[str]) -> ColumnElement[int]:
    """The SQL expression of :data:`PRIORITY` for a ``kind`` column."""
    return case(PRIORITY, value=kind, else_=DEFAULT_PRIORITY)


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    workspace_id: str
    kind: str
    params: Mapping[str, Any]
    cursor: Mapping[str, Any]
    progress: Mapping[str, Any]
    attempts: int


async def enqueue(
    session: AsyncSession,
    workspace_id: str,
    kind: str,
    params: Mapping[str, Any] | None = None,
    *,
    run_after: datetime | None = None,
    unique: bool = True,
) -> int:
    """Add a job; with ``unique``, an equal job already queued or running is returned instead."""
    params = dict(params or {})
    if unique:
        existing = await session.scalar(
            select(Job.id)
            .where(Job.workspace_id == workspace_id, Job.kind == kind, Job.status.in_(ACTIVE_STATUSES))
            .order_by(Job.id)
            .limit(1)
        )
        if existing is not None:
            same = await session.get(Job, existing)
            if same is not None and same.params == params:
                return int(existing)
    job = Job(
        workspace_id=workspace_id, kind=str(kind), params=params, status=JobStatus.QUEUED,
        run_after=run_after or utcnow(),
    )
    session.add(job)
    await session.flush()
    return int(job.id)


async def claim(
    session: AsyncSession,
    *,
    worker_id: str,
    kinds: Iterable[str],
    lease_seconds: float,
    now: datetime | None = None,
    workspace_concurrency: int = 1,
) -> ClaimedJob | None:
    """Take the next due job (see the module doc for which), or None.

    ``workspace_concurrency`` jobs of one workspace run at once at most (a job whose
    lease ran out does not count); ``unregister_webhooks`` is never held back by it.
    """
    now = now or utcnow()
    j = JOBS
    other = Job.__table__.alias("other")
    active = or_(
        j.c.kind.in_(RUNS_WHEN_INACTIVE),
        exists().where(Installation.workspace_id == j.c.workspace_id, Installation.status == InstallationStatus.ACTIVE),
    )
    busy = exists().where(
        other.c.workspace_id == j.c.workspace_id,
        other.c.kind == j.c.kind,
        other.c.id != j.c.id,
        other.c.status == JobStatus.RUNNING,
        other.c.locked_until >= now,
    )
    room = or_(j.c.kind.in_(RUNS_WHEN_INACTIVE), _running_in_workspace(j.c.workspace_id, j.c.id, now) < workspace_concurrency)
    candidate = (
        select(j.c.id)
        .where(QUEUE.due(now), active, ~busy, room, j.c.kind.in_(list(kinds)))
        .order_by(priority(j.c.kind), j.c.run_after, j.c.id)
        .limit(1)
    )
    take = update(j).values(**QUEUE.lease(worker_id, now=now, seconds=lease_seconds), started_at=now).returning(
        j.c.id, j.c.workspace_id, j.c.kind, j.c.params, j.c.cursor, j.c.progress, j.c.attempts
    )
    if is_postgres(session):
        row = await _claim_postgresql(session, candidate, take, now=now, workspace_concurrency=workspace_concurrency)
    else:
        # SQLite: one statement under the database's write lock sees every committed claim.
        row = (await session.execute(take.where(j.c.id == candidate.scalar_subquery()))).first()
    if row is None:
        return None
    return ClaimedJob(
        id=row.id, workspace_id=row.workspace_id, kind=row.kind, params=row.params or {}, cursor=row.cursor or {},
        progress=row.progress or {}, attempts=row.attempts,
    )


def _running_in_workspace(workspace_id: Any, job_id: Any, now: datetime, kind: Any = None) -> Any:
    """How many jobs of ``workspace_id`` (of ``kind``, if given) other than ``job_id`` hold a live lease."""
    running = Job.__table__.alias("running")
    conditions = [
        running.c.workspace_id == workspace_id,
        running.c.id != job_id,
        running.c.status == JobStatus.RUNNING,
        running.c.locked_until >= now,
    ]
    if kind is not None:
        conditions.append(running.c.kind == kind)
    return select(func.count()).select_from(running).where(*conditions).scalar_subquery()


async def _claim_postgresql(
    session: AsyncSession, candidate: Select[Any], take: Any, *, now: datetime, workspace_concurrency: int,
) -> Any:
    """Pick a candidate (SKIP LOCKED), then confirm the workspace's room under a lock of its own.

    The candidate query reads a snapshot: two instances claiming different jobs of one
    workspace at once would each miss the other's uncommitted claim. So the claim takes a
    transaction-level advisory lock on the workspace (only claims take it; it ends with the
    claim's commit) and counts again in a new statement, which sees every claim committed
    meanwhile. A workspace found full is left out and the next candidate tried.
    """
    j = JOBS
    full: list[str] = []
    for _ in range(_CLAIM_TRIES):
        query = skip_locked(session, candidate.add_columns(j.c.workspace_id, j.c.kind), of=j)
        if full:
            query = query.where(j.c.workspace_id.not_in(full))
        picked = (await session.execute(query)).first()
        if picked is None:
            return None
        job_id, workspace_id, kind = picked
        await session.execute(select(func.pg_advisory_xact_lock(_CLAIM_LOCK_SPACE, func.hashtext(workspace_id))))
        if kind not in RUNS_WHEN_INACTIVE:
            same_kind, in_workspace = (await session.execute(select(
                _running_in_workspace(workspace_id, job_id, now, kind), _running_in_workspace(workspace_id, job_id, now),
            ))).one()
            if same_kind or in_workspace >= workspace_concurrency:
                full.append(workspace_id)
                continue
        return (await session.execute(take.where(j.c.id == job_id))).first()
    return None


async def heartbeat(
    session: AsyncSession,
    job_id: int,
    *,
    worker_id: str,
    lease_seconds: float,
    progress: Mapping[str, Any] | None = None,
    cursor: Mapping[str, Any] | None = None,
) -> bool:
    """Renew the lease (and save progress/cursor). False: the job was cancelled or taken over."""
    values: dict[str, Any] = {"locked_until": utcnow() + timedelta(seconds=lease_seconds)}
    if progress is not None:
        values["progress"] = dict(progress)
    if cursor is not None:
        values["cursor"] = dict(cursor)
    result = await session.execute(update(JOBS).where(*QUEUE.held(job_id, worker_id)).values(**values))
    return int(getattr(result, "rowcount", 0) or 0) == 1


async def holds(session: AsyncSession, job_id: int, *, worker_id: str, lock: bool = False) -> bool:
    """Whether ``worker_id`` still runs the job (not cancelled, not taken over).

    With ``lock``, called first in a write transaction: the answer holds until that
    transaction ends. PostgreSQL takes a key-share lock on the job row (``FOR KEY SHARE``),
    which an uninstall's ``FOR UPDATE`` (:func:`cancel_workspace`, before its purge) must
    wait for, and which waits for an uninstall already under way, then sees the job
    cancelled; concurrent writers of one job share it, and the job's own heartbeats and
    checkpoints (updates of other columns than the key) pass it without waiting for the
    writes. SQLite gets the database's write lock from a no-op update, so nothing commits
    between this check and the writes after it.
    """
    mine = QUEUE.held(job_id, worker_id)
    if not lock:
        return await session.scalar(select(JOBS.c.id).where(*mine)) is not None
    if is_postgres(session):
        query = select(JOBS.c.id).where(*mine).with_for_update(read=True, key_share=True)
        return await session.scalar(query) is not None
    result = await session.execute(update(JOBS).where(*mine).values(locked_by=JOBS.c.locked_by))
    return int(getattr(result, "rowcount", 0) or 0) == 1


async def complete(
    session: AsyncSession,
    job_id: int,
    *,
    worker_id: str,
    status: JobStatus = JobStatus.DONE,
    error: str | None = None,
    progress: Mapping[str, Any] | None = None,
) -> bool:
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), **QUEUE.released, "error": error}
    if progress is not None:
        values["progress"] = dict(progress)
    result = await session.execute(update(JOBS).where(*QUEUE.held(job_id, worker_id)).values(**values))
    return int(getattr(result, "rowcount", 0) or 0) == 1


async def retry_later(session: AsyncSession, job_id: int, *, worker_id: str, error: str, delay: float) -> None:
    await session.execute(
        update(JOBS)
        .where(JOBS.c.id == job_id, JOBS.c.locked_by == worker_id)
        .values(**QUEUE.retry_at(utcnow() + timedelta(seconds=delay)), error=error[:2000])
    )


async def defer(session: AsyncSession, job_id: int, *, worker_id: str, reason: str, delay: float) -> bool:
    """Back to the queue for ``delay`` seconds, cursor and progress kept: the job waits for a
    rate budget to refill. Waiting is no failure, so the claim's attempt is given back and a
    job deferred any number of times is never dead-lettered for it."""
    result = await session.execute(
        update(JOBS).where(*QUEUE.held(job_id, worker_id))
        .values(**QUEUE.given_back(), run_after=utcnow() + timedelta(seconds=delay), error=reason[:2000])
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


async def requeue(session: AsyncSession, job_id: int, *, worker_id: str) -> bool:
    """Give the worker back: the job is due again now, behind every job due before it.

    Its cursor and progress stay; the claim's attempt is given back (a slice is no failure).
    """
    result = await session.execute(
        update(JOBS).where(*QUEUE.held(job_id, worker_id)).values(**QUEUE.given_back(), run_after=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


async def cancel_workspace(session: AsyncSession, workspace_id: str, *, keep_kinds: Iterable[str] = ()) -> int:
    """Cancel the workspace's queued and running jobs (an uninstall, before it purges).

    On PostgreSQL the rows are locked ``FOR UPDATE`` first: that waits for every write
    transaction of these jobs already under way (each holds ``FOR KEY SHARE``, :func:`holds`),
    which a plain update of non-key columns would not.
    """
    active = (Job.workspace_id == workspace_id, Job.status.in_(ACTIVE_STATUSES), Job.kind.not_in(list(keep_kinds)))
    ids = list((await session.execute(select(Job.id).where(*active).with_for_update())).scalars())
    if not ids:
        return 0
    result = await session.execute(
        update(Job)
        .where(Job.id.in_(ids), Job.status.in_(ACTIVE_STATUSES))
        .values(status=JobStatus.CANCELLED, finished_at=utcnow(), locked_by=None, locked_until=None,
                error="cancelled: add-on uninstalled")
    )
    return int(getattr(result, "rowcount", 0) or 0)
