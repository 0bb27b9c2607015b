"""`sync_state` rows: watermarks and counts per kind, schedule and parking per workspace.

Rows are created on first use with an ``INSERT ... ON CONFLICT DO NOTHING`` so two
jobs of one workspace (a bootstrap and a sync) can both touch them without racing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core.config import SyncConfig
from clockify_core.db.base import utcnow
from clockify_core.db.dialect import insert_for
from clockify_core.sync.models import WORKSPACE_KIND, SyncState

# Parking never lasts longer than this, however often a workspace fails.
MAX_PARK = timedelta(days=1)

_UNAVAILABLE_REASON = re.compile(r"^unavailable \((\d{3})\)$")


def unavailable_reason(status: int | None) -> str:
    """``parked_reason`` of a kind whose endpoint Clockify does not offer the workspace
    (a feature it lacks, a 404): not a fault, just looked at again later. ``status`` is the
    answer's (one of ``fetch.UNAVAILABLE``); an error without one is never called unavailable."""
    return f"unavailable ({status})"


def unavailable_status(reason: str | None) -> int | None:
    """The HTTP status of an :func:`unavailable_reason`, or None for any other reason."""
    match = _UNAVAILABLE_REASON.match(reason or "")
    return int(match.group(1)) if match else None


async def ensure(session: AsyncSession, workspace_id: str, kinds: Iterable[str]) -> None:
    rows = [
        {"workspace_id": workspace_id, "kind": kind, "rows_total": 0, "rows_last_run": 0, "consecutive_failures": 0}
        for kind in dict.fromkeys(kinds)
    ]
    if not rows:
        return
    await session.execute(insert_for(session)(SyncState).values(rows).on_conflict_do_nothing(index_elements=["workspace_id", "kind"]))


async def load(session: AsyncSession, workspace_id: str, kind: str) -> SyncState:
    await ensure(session, workspace_id, [kind])
    state = await session.get(SyncState, (workspace_id, kind), populate_existing=True)
    assert state is not None
    return state


async def states(session: AsyncSession, workspace_id: str) -> dict[str, SyncState]:
    result = await session.execute(select(SyncState).where(SyncState.workspace_id == workspace_id))
    return {s.kind: s for s in result.scalars()}


async def set_fields(session: AsyncSession, workspace_id: str, kind: str, **values: Any) -> None:
    await ensure(session, workspace_id, [kind])
    await session.execute(
        update(SyncState).where(SyncState.workspace_id == workspace_id, SyncState.kind == kind).values(**values)
    )


async def kind_succeeded(
    session: AsyncSession, workspace_id: str, kind: str, *, started: datetime, rows: int, total: int | None,
    watermark: datetime | None = None,
) -> None:
    values: dict[str, Any] = {
        "last_run_at": started, "last_success_at": utcnow(), "rows_last_run": rows, "last_error": None,
        "consecutive_failures": 0, "parked_until": None, "parked_reason": None,
    }
    if total is not None:
        values["rows_total"] = total
    if watermark is not None:
        values["watermark"] = watermark
    await set_fields(session, workspace_id, kind, **values)


async def kind_failed(session: AsyncSession, workspace_id: str, kind: str, *, started: datetime, error: str) -> None:
    await ensure(session, workspace_id, [kind])
    await session.execute(
        update(SyncState)
        .where(SyncState.workspace_id == workspace_id, SyncState.kind == kind)
        .values(last_run_at=started, last_error=error[:2000], consecutive_failures=SyncState.consecutive_failures + 1)
    )


async def workspace_succeeded(session: AsyncSession, workspace_id: str, *, started: datetime) -> None:
    await set_fields(
        session, workspace_id, WORKSPACE_KIND, last_run_at=started, last_success_at=utcnow(), last_error=None,
        consecutive_failures=0, parked_until=None, parked_reason=None,
    )


async def workspace_failed(
    session: AsyncSession, workspace_id: str, error: str, config: SyncConfig, *, now: datetime | None = None
) -> datetime | None:
    """Count a failed run; returns when the workspace is parked until, if this parks it.

    The first parking lasts ``park_minutes``; each further failure while at or over the
    threshold doubles it, up to a day. A success (or an operator) clears it.
    """
    now = now or utcnow()
    state = await load(session, workspace_id, WORKSPACE_KIND)
    failures = state.consecutive_failures + 1
    state.consecutive_failures = failures
    state.last_run_at = now
    state.last_error = error[:2000]
    if failures < config.park_after_failures:
        return None
    factor = 2 ** min(failures - config.park_after_failures, 16)
    until = now + min(timedelta(minutes=config.park_minutes * factor), MAX_PARK)
    state.parked_until = until
    state.parked_reason = f"{failures} consecutive failures; last: {error}"[:2000]
    return until


async def parked_until(session: AsyncSession, workspace_id: str, *, now: datetime | None = None) -> SyncState | None:
    """The workspace row when it is parked now, else None."""
    now = now or utcnow()
    state = await session.get(SyncState, (workspace_id, WORKSPACE_KIND), populate_existing=True)
    if state is None or state.parked_until is None or state.parked_until <= now:
        return None
    return state


async def unpark(session: AsyncSession, workspace_id: str) -> None:
    await set_fields(
        session, workspace_id, WORKSPACE_KIND, parked_until=None, parked_reason=None, consecutive_failures=0
    )
