"""Named leases in `scheduler_leases`: one holder at a time across every instance.

A lease is a row; taking it is an UPDATE that succeeds only for the current holder or
once the lease has expired, so a dead leader is replaced after ``seconds``. It works
the same on SQLite and PostgreSQL and holds no connection between rounds.

Expiry is judged on the database's clock (:func:`database_now`), never on the caller's:
instances whose clocks disagree would otherwise each see the other's lease as expired
(or their own as live) and both lead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import String, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from clockify_core.db.base import Base, UtcDateTime
from clockify_core.db.dialect import insert_for, is_postgres


class SchedulerLease(Base):
    """Single-leader election that works on SQLite and PostgreSQL alike."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_tick_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# SQLite has no server: its clock is the host's, which every process sharing the file has in common.
_SQLITE_NOW = text("strftime('%Y-%m-%d %H:%M:%f', 'now')")


async def database_now(session: AsyncSession) -> datetime:
    """The database server's current time (UTC, aware)."""
    if is_postgres(session):
        # statement_timestamp(), not now(): a transaction may have waited on a row lock since it began.
        value = await session.scalar(select(text("statement_timestamp()")))
    else:
        value = await session.scalar(select(_SQLITE_NOW))
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        raise TypeError(f"the database answered {value!r} for its clock")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def take_lease(
    session: AsyncSession, name: str, holder: str, *, seconds: float, now: datetime | None = None
) -> bool:
    """Take or renew lease ``name`` in the caller's transaction; the row stays locked until commit.

    ``now`` defaults to the database's clock; pass one only for rows that are markers of
    the caller's own time rather than leases contended by instances.
    """
    await session.execute(
        insert_for(session)(SchedulerLease).values(name=name, holder="", expires_at=_EPOCH).on_conflict_do_nothing(index_elements=["name"])
    )
    if now is None:
        now = await database_now(session)
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
