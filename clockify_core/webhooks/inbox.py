"""The durable inbox: accept once, claim safely, retry with backoff, dead-letter, replay.

Deduplication. Clockify sends no delivery id, so a delivery is identified by
(workspace, event type, SHA-256 of the body). Equal bodies can also be genuine
(an entry edited A → B → A), so the identity is only trusted for a window: the key
includes a time bucket and an insert is also refused while the previous bucket holds
the same body. A redelivery within one to two windows is stored once; a later equal
body is a new event. Applying an event twice is harmless to the mirror (idempotent
upserts), so the window only has to cover Clockify's retries.

Claiming. Workers claim PENDING rows whose next attempt is due, plus PROCESSING rows
whose lease expired (their worker died), only for ACTIVE installations, and never an
event while an older event of the same entity is still unfinished (per-entity order).
PostgreSQL uses ``FOR UPDATE SKIP LOCKED``; SQLite's single writer serialises claims.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

import orjson
from sqlalchemy import and_, exists, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core.db.base import utcnow
from clockify_core.lifecycle.models import Installation, InstallationStatus
from clockify_core.webhooks.models import EventSource, InboxEvent, InboxStatus

DEFAULT_DEDUP_WINDOW = 3600.0


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def dedup_key(workspace_id: str, event_type: str, digest: str, bucket: int) -> str:
    return hashlib.sha256(f"{workspace_id}|{event_type}|{digest}|{bucket}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Stored:
    id: int | None
    duplicate: bool


async def store_event(
    session: AsyncSession,
    *,
    workspace_id: str,
    event_type: str,
    body: bytes,
    source: str = EventSource.CLOCKIFY,
    entity_key: str | None = None,
    source_ref: str | None = None,
    now: datetime | None = None,
    window: float = DEFAULT_DEDUP_WINDOW,
) -> Stored:
    """Insert an accepted event unless it is a redelivery; the caller commits."""
    now = now or utcnow()
    digest = body_digest(body)
    bucket = int(now.timestamp() // window)
    key, previous = dedup_key(workspace_id, event_type, digest, bucket), dedup_key(workspace_id, event_type, digest, bucket - 1)
    table = InboxEvent.__table__
    values = {
        "workspace_id": workspace_id,
        "event_type": event_type,
        "source": str(source),
        "source_ref": source_ref,
        "dedup_key": key,
        "entity_key": entity_key,
        "body": body.decode("utf-8"),
        "status": InboxStatus.PENDING.value,
        "attempts": 0,
        "deliveries": 1,
        "next_attempt_at": now,
        "received_at": now,
    }
    columns = list(values)
    source_rows = select(*[literal(v, type_=table.c[c].type).label(c) for c, v in values.items()]).where(
        ~exists().where(table.c.dedup_key == previous)
    )
    insert = postgresql.insert if session.bind is not None and session.bind.dialect.name == "postgresql" else sqlite.insert
    stmt = (
        insert(table)
        .from_select(columns, source_rows)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(table.c.id)
    )
    inserted = (await session.execute(stmt)).scalar()
    if inserted is not None:
        return Stored(id=int(inserted), duplicate=False)
    await session.execute(
        update(table).where(table.c.dedup_key.in_([key, previous])).values(deliveries=table.c.deliveries + 1)
    )
    return Stored(id=None, duplicate=True)


@dataclass(frozen=True)
class ClaimedEvent:
    id: int
    workspace_id: str
    event_type: str
    source: str
    source_ref: str | None
    body_text: str
    attempts: int
    received_at: datetime

    @cached_property
    def body(self) -> Any:
        return orjson.loads(self.body_text)


def _claimable(now: datetime) -> Any:
    e = InboxEvent.__table__
    earlier = InboxEvent.__table__.alias("earlier")
    due = or_(
        and_(e.c.status == InboxStatus.PENDING, e.c.next_attempt_at <= now),
        and_(e.c.status == InboxStatus.PROCESSING, e.c.locked_until < now),
    )
    active = exists().where(
        Installation.workspace_id == e.c.workspace_id, Installation.status == InstallationStatus.ACTIVE
    )
    blocked = exists().where(
        earlier.c.workspace_id == e.c.workspace_id,
        earlier.c.entity_key == e.c.entity_key,
        earlier.c.id < e.c.id,
        earlier.c.status.in_([InboxStatus.PENDING, InboxStatus.PROCESSING]),
    )
    return and_(due, active, or_(e.c.entity_key.is_(None), ~blocked))


async def claim(
    session: AsyncSession, *, worker_id: str, limit: int, lease_seconds: float, now: datetime | None = None
) -> list[ClaimedEvent]:
    """Claim up to ``limit`` due events for ``worker_id``; the caller commits at once."""
    now = now or utcnow()
    e = InboxEvent.__table__
    candidates = select(e.c.id).where(_claimable(now)).order_by(e.c.id).limit(limit)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True, of=e)
    stmt = (
        update(e)
        .where(e.c.id.in_(candidates.scalar_subquery()))
        .values(
            status=InboxStatus.PROCESSING,
            locked_by=worker_id,
            locked_until=now + timedelta(seconds=lease_seconds),
            attempts=e.c.attempts + 1,
        )
        .returning(
            e.c.id, e.c.workspace_id, e.c.event_type, e.c.source, e.c.source_ref, e.c.body, e.c.attempts,
            e.c.received_at,
        )
    )
    rows = (await session.execute(stmt)).all()
    events = [
        ClaimedEvent(
            id=r.id, workspace_id=r.workspace_id, event_type=r.event_type, source=r.source, source_ref=r.source_ref,
            body_text=r.body,
            attempts=r.attempts, received_at=r.received_at,
        )
        for r in rows
    ]
    return sorted(events, key=lambda ev: ev.id)


async def finish(session: AsyncSession, event_id: int, *, worker_id: str, now: datetime | None = None) -> bool:
    """Mark DONE in the transaction that applied the event. False: the lease was lost, so
    the caller must roll back (another worker owns the event now)."""
    e = InboxEvent.__table__
    result = await session.execute(
        update(e)
        .where(e.c.id == event_id, e.c.locked_by == worker_id, e.c.status == InboxStatus.PROCESSING)
        .values(status=InboxStatus.DONE, processed_at=now or utcnow(), locked_by=None, locked_until=None, last_error=None)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def backoff_seconds(attempts: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: about base·2^(n-1), never above cap."""
    rng = rng or random.Random()  # noqa: S311 - jitter, not security
    ideal = min(cap, base * (2 ** max(0, attempts - 1)))
    return ideal / 2 + rng.random() * ideal / 2


async def fail(
    session: AsyncSession,
    event_id: int,
    *,
    worker_id: str,
    attempts: int,
    error: str,
    max_attempts: int,
    base: float,
    cap: float,
    now: datetime | None = None,
) -> str:
    """Record a failed attempt: back to PENDING with backoff, or DEAD after ``max_attempts``."""
    now = now or utcnow()
    e = InboxEvent.__table__
    dead = attempts >= max_attempts
    status = InboxStatus.DEAD if dead else InboxStatus.PENDING
    await session.execute(
        update(e)
        .where(e.c.id == event_id, e.c.locked_by == worker_id)
        .values(
            status=status,
            locked_by=None,
            locked_until=None,
            last_error=error[:2000],
            next_attempt_at=now + timedelta(seconds=0 if dead else backoff_seconds(attempts, base=base, cap=cap)),
        )
    )
    return str(status)


async def release(session: AsyncSession, event_ids: Sequence[int], *, worker_id: str) -> None:
    """Give claimed events back untouched (shutdown, or a paused workspace)."""
    if not event_ids:
        return
    e = InboxEvent.__table__
    await session.execute(
        update(e)
        .where(e.c.id.in_(list(event_ids)), e.c.locked_by == worker_id, e.c.status == InboxStatus.PROCESSING)
        .values(status=InboxStatus.PENDING, locked_by=None, locked_until=None, attempts=e.c.attempts - 1)
    )


async def replay_dead(
    session: AsyncSession, *, workspace_id: str | None = None, ids: Sequence[int] | None = None
) -> int:
    """Put dead letters back in the queue with a fresh attempt budget."""
    e = InboxEvent.__table__
    clauses = [e.c.status == InboxStatus.DEAD]
    if workspace_id is not None:
        clauses.append(e.c.workspace_id == workspace_id)
    if ids is not None:
        clauses.append(e.c.id.in_(list(ids)))
    result = await session.execute(
        update(e).where(*clauses).values(status=InboxStatus.PENDING, attempts=0, next_attempt_at=utcnow(), last_error=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def depth(session: AsyncSession, workspace_id: str | None = None) -> dict[str, int]:
    e = InboxEvent.__table__
    stmt = select(e.c.status, func.count()).group_by(e.c.status)
    if workspace_id is not None:
        stmt = stmt.where(e.c.workspace_id == workspace_id)
    counts = {str(status): int(n) for status, n in (await session.execute(stmt)).all()}
    return {status.value: counts.get(status.value, 0) for status in InboxStatus}


async def cancel_workspace(session: AsyncSession, workspace_id: str) -> int:
    """Drop the unfinished events of an uninstalled workspace."""
    e = InboxEvent.__table__
    result = await session.execute(
        e.delete().where(e.c.workspace_id == workspace_id, e.c.status.in_([InboxStatus.PENDING, InboxStatus.PROCESSING]))
    )
    return int(getattr(result, "rowcount", 0) or 0)


