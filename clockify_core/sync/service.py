"""Operator actions on pulls, shared by the HTTP API and the CLI: queue, list, cancel."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core.db.base import utcnow
from clockify_core.errors import Conflict, NotFound, ValidationFailed
from clockify_core.installations.models import Installation, InstallationStatus
from clockify_core.installations.repository import require_installation
from clockify_core.jobs import queue
from clockify_core.jobs.models import Job, JobKind, JobStatus
from clockify_core.sync import state
from clockify_core.tiers import ServiceProfile

Window = Literal["day", "week", "month", "year"]
# Backfill bounds: older dates hold no Clockify data (and year 1 overflows once moved to UTC);
# later ones are no entries anyone tracked yet.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_AHEAD = timedelta(days=366)
PULL_KINDS = (JobKind.BOOTSTRAP.value, JobKind.SYNC.value, JobKind.BACKFILL.value, JobKind.RECONCILE.value)


def day_start(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=utcnow().tzinfo)
    return datetime.combine(value, time(0), tzinfo=utcnow().tzinfo)


async def active_workspaces(session: AsyncSession, only: Sequence[str] = ()) -> list[str]:
    stmt = select(Installation.workspace_id).where(Installation.status == InstallationStatus.ACTIVE)
    if only:
        stmt = stmt.where(Installation.workspace_id.in_(list(only)))
    return list((await session.execute(stmt.order_by(Installation.workspace_id))).scalars())


async def queue_pull(
    session: AsyncSession, profile: ServiceProfile, workspace_id: str, kind: str, params: dict[str, Any] | None = None
) -> int:
    """Queue a pull for an ACTIVE installation; an operator's request lifts any parking."""
    await require_installation(session, workspace_id, active=True)
    if kind in (JobKind.BACKFILL, JobKind.RECONCILE) and not profile.sync_time_entries:
        raise Conflict(f"{profile.name} mirrors reference data only; it does not {kind} time entries")
    await state.unpark(session, workspace_id)
    return await queue.enqueue(session, workspace_id, kind, params or {})


def _refuse(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field} {message}", errors=[{"loc": [field], "msg": message}])


def backfill_params(since: date | datetime, until: date | datetime | None, window: Window) -> dict[str, Any]:
    """Checked job parameters, in UTC; :class:`ValidationFailed` (422) names a bad bound."""
    now = utcnow()
    # Aware datetimes compare across offsets without conversion, so these checks cannot overflow.
    start = day_start(since)
    if start < EARLIEST:
        raise _refuse("since", f"is before {EARLIEST.date().isoformat()}")
    if start > now:
        raise _refuse("since", "is in the future")
    end = day_start(until) if until is not None else None
    if end is not None and end <= start:
        raise _refuse("until", "is not after since")
    if end is not None and end > now + LATEST_AHEAD:
        raise _refuse("until", f"is more than {LATEST_AHEAD.days} days ahead")
    params: dict[str, Any] = {"since": start.astimezone(UTC).isoformat(), "window": window}
    if end is not None:
        params["until"] = end.astimezone(UTC).isoformat()
    return params


async def list_jobs(
    session: AsyncSession,
    *,
    workspace_id: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    limit: int = 50,
    ids: Sequence[int] = (),
) -> list[Job]:
    stmt = select(Job).order_by(Job.id.desc()).limit(limit)
    if workspace_id:
        stmt = stmt.where(Job.workspace_id == workspace_id)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    if status:
        stmt = stmt.where(Job.status == status.upper())
    if ids:
        stmt = stmt.where(Job.id.in_(list(ids)))
    return list((await session.execute(stmt)).scalars())


async def cancel_job(session: AsyncSession, job_id: int) -> Job:
    job = await session.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    if job.status not in queue.ACTIVE_STATUSES:
        raise Conflict(f"job {job_id} is already {job.status}")
    # The running worker notices at its next checkpoint (JobLost) and stops.
    await session.execute(
        update(Job).where(Job.id == job_id).values(status=JobStatus.CANCELLED, finished_at=utcnow(), locked_by=None,
                                                   locked_until=None, error="cancelled by an operator")
    )
    await session.refresh(job)
    return job


async def installation_status(session: AsyncSession, workspace_id: str) -> str:
    installation = await session.get(Installation, workspace_id)
    if installation is None:
        raise NotFound("The add-on is not installed on this workspace")
    return installation.status
