"""Named leases in `scheduler_leases`: one holder at a time across every instance.

A lease is a row; taking it is an UPDATE that succeeds only for the current holder or
once the lease has expired, so a dead leader is replaced after ``seconds``. It works
the same on SQLite and PostgreSQL and holds no connection between rounds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core.sync.models import SchedulerLease

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def take_lease(session: AsyncSession, name: str, holder: str, *, now: datetime, seconds: float) -> bool:
    """Take or renew lease ``name`` in the caller's transaction; the row stays locked until commit."""
    dialect = session.bind.dialect.name if session.bind is not None else "postgresql"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(
        insert(SchedulerLease).values(name=name, holder="", expires_at=_EPOCH).on_conflict_do_nothing(index_elements=["name"])
    )
    result = await session.execute(
        update(SchedulerLease)
        .where(SchedulerLease.name == name, or_(SchedulerLease.holder == holder, SchedulerLease.expires_at < now))
        .values(holder=holder, expires_at=now + timedelta(seconds=seconds), last_tick_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


async def release_lease(session: AsyncSession, name: str, holder: str) -> None:
    await session.execute(
        update(SchedulerLease).where(SchedulerLease.name == name, SchedulerLease.holder == holder).values(expires_at=_EPOCH)
    )


async def lease_holder(session: AsyncSession, name: str) -> SchedulerLease | None:
    return await session.get(SchedulerLease, name, populate_existing=True)
