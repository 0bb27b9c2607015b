"""The queue side of flow runs: leasing due runs to an executor (``FOR UPDATE SKIP LOCKED``
on PostgreSQL), and ending those whose worker keeps dying with them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, exists, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core.db.base import utcnow
from clockify_core.db.dialect import skip_locked
from clockify_core.db.queue import LeasedQueue
from clockify_core.flows.engine import record_failure
from clockify_core.flows.models import FlowRun, RunStatus
from clockify_core.installations.models import Installation, InstallationStatus

RUNS = LeasedQueue(cast(Table, FlowRun.__table__), waiting=RunStatus.QUEUED, running=RunStatus.RUNNING,
                   due_at="next_attempt_at")


@dataclass
class ClaimedRun:
    id: int
    flow_id: str
    workspace_id: str
    event_type: str | None
    inbox_event_id: int | None
    chain_depth: int
    attempts: int
    trigger: dict[str, Any]
    state: dict[str, Any]
    actions: list[dict[str, Any]]
    started_at: datetime
    # Set when the claim ended the run as FAILED instead (see :func:`claim`); not to execute.
    gave_up: str | None = None
    # The flow's secret values: masked in whatever of the run is stored or logged.
    secrets: list[str] = field(default_factory=list)


async def claim(
    session: AsyncSession,
    *,
    worker_id: str,
    limit: int,
    lease_seconds: float,
    max_attempts: int,
    failure_threshold: int,
    now: datetime | None = None,
) -> list[ClaimedRun]:
    """Lease up to ``limit`` due runs to ``worker_id``.

    A run found RUNNING with its lease run out was being executed by a worker that stopped
    (crashed, was killed, or stalled past its lease). That counts as an attempt of the action
    it was on, so a run that keeps taking its worker down ends FAILED (counted towards the
    flow's auto-disable) once the action has had ``max_attempts``, instead of being claimed
    forever. Such runs come back with ``gave_up`` set and must not be executed.
    """
    now = now or utcnow()
    r = RUNS.table
    due = RUNS.due(now)
    # No outbound calls for a paused (INACTIVE) workspace: its runs wait.
    active = exists().where(
        Installation.workspace_id == r.c.workspace_id, Installation.status == InstallationStatus.ACTIVE
    )
    candidates = skip_locked(session, select(r.c.id, r.c.status).where(due, active).order_by(r.c.id).limit(limit), of=r)
    found = (await session.execute(candidates)).all()
    if not found:
        return []
    interrupted = {row.id for row in found if row.status == RunStatus.RUNNING}
    rows = (
        await session.execute(
            update(r)
            # Due still: on SQLite the SELECT takes no lock, so another worker may have claimed a row since.
            .where(r.c.id.in_([row.id for row in found]), due, active)
            .values(
                **RUNS.lease(worker_id, now=now, seconds=lease_seconds), started_at=func_coalesce(r.c.started_at, now),
            )
            .returning(
                r.c.id, r.c.flow_id, r.c.workspace_id, r.c.event_type, r.c.inbox_event_id, r.c.chain_depth,
                r.c.attempts, r.c.trigger, r.c.state, r.c.actions, r.c.started_at,
            )
        )
    ).all()
    claimed: list[ClaimedRun] = []
    for row in sorted(rows, key=lambda row: row.id):
        run = ClaimedRun(
            id=row.id, flow_id=row.flow_id, workspace_id=row.workspace_id, event_type=row.event_type,
            inbox_event_id=row.inbox_event_id, chain_depth=row.chain_depth, attempts=row.attempts,
            trigger=dict(row.trigger or {}), state=dict(row.state or {}), actions=list(row.actions or []),
            started_at=row.started_at or now,
        )
        if run.id in interrupted:
            await _count_interruption(session, run, max_attempts, failure_threshold, now)
        claimed.append(run)
    return claimed


async def _count_interruption(
    session: AsyncSession, run: ClaimedRun, max_attempts: int, failure_threshold: int, now: datetime
) -> None:
    index = int(run.state.get("next", 0))
    attempts = {**run.state.get("attempts", {})}
    attempts[str(index)] = int(attempts.get(str(index), 0)) + 1
    run.state = {**run.state, "attempts": attempts}
    values: dict[str, Any] = {"state": run.state}
    if attempts[str(index)] >= max_attempts:
        run.gave_up = (
            f"action {index + 1}: the worker running it stopped before it finished (crashed, killed or past its "
            f"lease) on attempt {attempts[str(index)]} of {max_attempts}; not retried"
        )
        values.update(
            status=RunStatus.FAILED, error=run.gave_up, finished_at=now, locked_by=None, locked_until=None,
            next_attempt_at=None, duration_ms=max(0, round((now - run.started_at).total_seconds() * 1000)),
        )
        await record_failure(session, run.flow_id, run.gave_up, failure_threshold)
    await session.execute(update(FlowRun).where(FlowRun.id == run.id).values(**values))


def func_coalesce(column: Any, value: datetime) -> Any:
    return func.coalesce(column, literal(value, type_=FlowRun.__table__.c.started_at.type))
