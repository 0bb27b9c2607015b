"""The job queue: enqueue in the caller's transaction, claim with a lease, heartbeat, finish.

A job is a row. Enqueueing it in the transaction that decided it (an INSTALLED
handler, a scheduler tick) makes the decision durable: a crash after commit still
leaves the job to run. Claims take a lease that running jobs renew; a job whose
worker died is claimed again once its lease expires, and resumes from its cursor.
At most one job of a kind runs per workspace at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core.db.base import utcnow
from clockify_core.jobs.models import Job, JobKind, JobStatus
from clockify_core.lifecycle.models import Installation, InstallationStatus

JOBS: Table = Job.__table__  # type: ignore[assignment]  # the declarative __table__ is a Table

# These must run whatever state the installation is in (they clean up after it).
RUNS_WHEN_INACTIVE = frozenset({JobKind.UNREGISTER_WEBHOOKS.value})
ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


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
) -> ClaimedJob | None:
    now = now or utcnow()
    j = JOBS
    other = Job.__table__.alias("other")
    due = or_(
        and_(j.c.status == JobStatus.QUEUED, j.c.run_after <= now),
        and_(j.c.status == JobStatus.RUNNING, j.c.locked_until < now),
    )
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
    candidate = select(j.c.id).where(due, active, ~busy, j.c.kind.in_(list(kinds))).order_by(j.c.run_after, j.c.id).limit(1)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        candidate = candidate.with_for_update(skip_locked=True, of=j)
    row = (
        await session.execute(
            update(j)
            .where(j.c.id == candidate.scalar_subquery())
            .values(
                status=JobStatus.RUNNING,
                locked_by=worker_id,
                locked_until=now + timedelta(seconds=lease_seconds),
                attempts=j.c.attempts + 1,
                started_at=now,
            )
            .returning(j.c.id, j.c.workspace_id, j.c.kind, j.c.params, j.c.cursor, j.c.progress, j.c.attempts)
        )
    ).first()
    if row is None:
        return None
    return ClaimedJob(
        id=row.id, workspace_id=row.workspace_id, kind=row.kind, params=row.params or {}, cursor=row.cursor or {},
        progress=row.progress or {}, attempts=row.attempts,
    )


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
    result = await session.execute(
        update(Job).where(Job.id == job_id, Job.locked_by == worker_id, Job.status == JobStatus.RUNNING).values(**values)
    )
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
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "locked_by": None, "locked_until": None, "error": error}
    if progress is not None:
        values["progress"] = dict(progress)
    result = await session.execute(
        update(Job).where(Job.id == job_id, Job.locked_by == worker_id, Job.status == JobStatus.RUNNING).values(**values)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


async def retry_later(session: AsyncSession, job_id: int, *, worker_id: str, error: str, delay: float) -> None:
    await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.locked_by == worker_id)
        .values(status=JobStatus.QUEUED, locked_by=None, locked_until=None, error=error[:2000],
                run_after=utcnow() + timedelta(seconds=delay))
    )


async def cancel_workspace(session: AsyncSession, workspace_id: str, *, keep_kinds: Iterable[str] = ()) -> int:
    result = await session.execute(
        update(Job)
        .where(Job.workspace_id == workspace_id, Job.status.in_(ACTIVE_STATUSES), Job.kind.not_in(list(keep_kinds)))
        .values(status=JobStatus.CANCELLED, finished_at=utcnow(), locked_by=None, locked_until=None,
                error="cancelled: add-on uninstalled")
    )
    return int(getattr(result, "rowcount", 0) or 0)
