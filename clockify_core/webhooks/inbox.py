"""The durable inbox: accept once, claim safely, retry with backoff, dead-letter, replay.

Deduplication. Clockify sends no delivery id, so a delivery is identified by
(workspace, event type, SHA-256 of the body). Equal bodies can also be genuine
(an entry edited A → B → A), so the identity is only trusted for a window: the key
includes a time bucket and an insert is also refused while the previous bucket holds
the same body. A redelivery within one to two windows is stored once; a later equal
body is a new event. Applying an event twice is harmless to the mirror (idempotent
upserts), so the window only has to cover Clockify's retries. A sender that does name
its deliveries (custom webhooks' ``webhook-id``) passes that ``delivery_id`` instead: the
key is then (workspace, source, source ref, id), whatever the body and however late.

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
from typing import Any, cast

import asyncpg
import orjson
from sqlalchemy import Table, and_, exists, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from clockify_core.db.base import Base, utcnow
from clockify_core.lifecycle.models import (
    Installation,
    InstallationStatus,
    SubscriptionStatus,
    WebhookSubscription,
)
from clockify_core.webhooks.models import EventSource, InboxEvent, InboxStatus

DEFAULT_DEDUP_WINDOW = 3600.0


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


_INBOX = _table(InboxEvent)
# Connection lost, server shutting down or not accepting connections (SQLSTATE classes 08, 57).
_ASYNCPG_OUTAGES = (asyncpg.InterfaceError, asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError)


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def dedup_key(workspace_id: str, event_type: str, digest: str, bucket: int) -> str:
    return hashlib.sha256(f"{workspace_id}|{event_type}|{digest}|{bucket}".encode()).hexdigest()


def delivery_key(workspace_id: str, source: str, source_ref: str | None, delivery_id: str) -> str:
    """The dedup key of a delivery its sender identified by ``delivery_id``."""
    return hashlib.sha256(f"delivery|{workspace_id}|{source}|{source_ref or ''}|{delivery_id}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Stored:
    id: int | None
    duplicate: bool


async def store_event(
    session: AsyncSession | AsyncConnection,
    *,
    workspace_id: str,
    event_type: str,
    body: bytes,
    source: str = EventSource.CLOCKIFY,
    entity_key: str | None = None,
    source_ref: str | None = None,
    now: datetime | None = None,
    window: float = DEFAULT_DEDUP_WINDOW,
    delivery_id: str | None = None,
) -> Stored:
    """Insert an accepted event unless it is a redelivery; the caller commits.

    A redelivery is the same body within ``window``, or with ``delivery_id`` (the sender's
    own id of the delivery) the same id from the same ``source`` and ``source_ref``.
    """
    now = now or utcnow()
    if delivery_id is None:
        digest = body_digest(body)
        bucket = int(now.timestamp() // window)
        key = dedup_key(workspace_id, event_type, digest, bucket)
        earlier = [dedup_key(workspace_id, event_type, digest, bucket - 1)]
    else:
        key, earlier = delivery_key(workspace_id, str(source), source_ref, delivery_id), []
    table = _INBOX
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
    source_rows = select(*[literal(v, type_=table.c[c].type).label(c) for c, v in values.items()])
    if earlier:
        source_rows = source_rows.where(~exists().where(table.c.dedup_key.in_(earlier)))
    insert = postgresql.insert if _is_postgres(session) else sqlite.insert
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
        update(table).where(table.c.dedup_key.in_([key, *earlier])).values(deliveries=table.c.deliveries + 1)
    )
    return Stored(id=None, duplicate=True)


def _is_postgres(executor: AsyncSession | AsyncConnection) -> bool:
    bind = executor.bind if isinstance(executor, AsyncSession) else executor
    return bind is not None and bind.dialect.name == "postgresql"


@dataclass(frozen=True)
class NewEvent:
    """An event to store through :func:`store_batch`.

    With ``subscription_id`` set, the row is stored only while that webhook subscription is
    still active with ``token_digest`` on a live installation of ``addon_id``: the check runs
    in the INSERT itself, so a receiver may skip its own lookup (cached) without a revoked
    token ever getting an event in.
    """

    workspace_id: str
    event_type: str
    body: bytes
    received_at: datetime
    source: str = EventSource.CLOCKIFY
    entity_key: str | None = None
    source_ref: str | None = None
    window: float = DEFAULT_DEDUP_WINDOW
    subscription_id: int | None = None
    token_digest: str | None = None
    addon_id: str | None = None

    @cached_property
    def identity(self) -> tuple[str, str, str]:
        return self.workspace_id, self.event_type, body_digest(self.body)

    @cached_property
    def keys(self) -> tuple[str, str]:
        """(dedup key of the current time bucket, key of the previous bucket)."""
        bucket = int(self.received_at.timestamp() // self.window)
        ws, event, digest = self.identity
        return dedup_key(ws, event, digest, bucket), dedup_key(ws, event, digest, bucket - 1)


# One statement for a whole batch on PostgreSQL. The rows travel as one JSON document: its
# text (and so asyncpg's prepared statement) is the same whatever the batch size, and
# encoding it is one orjson call where array parameters cost several Python checks per
# value. `allowed` re-checks the webhook subscription; rows skipped by ON CONFLICT or by
# the previous-bucket test are redeliveries.
_PG_BATCH_INSERT = """
WITH v AS (
    SELECT * FROM json_to_recordset($1::json) AS v(
        workspace_id text, event_type text, source text, source_ref text, dedup_key text, previous_key text,
        entity_key text, body text, received_at timestamptz, subscription_id int, token_digest text, addon_id text
    )
),
allowed AS (
    SELECT v.* FROM v
    WHERE v.subscription_id IS NULL OR EXISTS (
        SELECT 1 FROM webhook_subscriptions s JOIN installations i ON i.workspace_id = s.workspace_id
        WHERE s.id = v.subscription_id AND s.token_digest = v.token_digest AND s.status = 'ACTIVE'
          AND s.workspace_id = v.workspace_id AND i.addon_id = v.addon_id AND i.status <> 'DELETED'
    )
),
inserted AS (
    INSERT INTO inbox_events (workspace_id, event_type, source, source_ref, dedup_key, entity_key, body, status,
                              attempts, deliveries, next_attempt_at, received_at)
    SELECT a.workspace_id, a.event_type, a.source, a.source_ref, a.dedup_key, a.entity_key, a.body, 'PENDING',
           0, 1, a.received_at, a.received_at
    FROM allowed a
    WHERE NOT EXISTS (SELECT 1 FROM inbox_events p WHERE p.dedup_key = a.previous_key)
    ORDER BY a.dedup_key
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING id, dedup_key
)
SELECT a.dedup_key, i.id FROM allowed a LEFT JOIN inserted i ON i.dedup_key = a.dedup_key
"""

_PG_COUNT_DELIVERIES = """
UPDATE inbox_events AS e SET deliveries = e.deliveries + v.n
FROM unnest($1::text[], $2::int[]) AS v(k, n)
WHERE e.dedup_key = v.k
"""


async def _subscription_allows(conn: AsyncConnection, event: NewEvent) -> bool:
    if event.subscription_id is None:
        return True
    s, i = _table(WebhookSubscription), _table(Installation)
    found = await conn.scalar(
        select(s.c.id)
        .join(i, i.c.workspace_id == s.c.workspace_id)
        .where(
            s.c.id == event.subscription_id,
            s.c.token_digest == event.token_digest,
            s.c.status == SubscriptionStatus.ACTIVE,
            s.c.workspace_id == event.workspace_id,
            i.c.addon_id == event.addon_id,
            i.c.status != InstallationStatus.DELETED,
        )
    )
    return found is not None


async def store_batch(conn: AsyncConnection, events: Sequence[NewEvent]) -> list[Stored | None]:
    """Store many events; ``None`` where the subscription check refused.

    Same deduplication as :func:`store_event`; equal bodies within the batch count as
    redeliveries of the first. On PostgreSQL the events go in one statement, which is
    durable when it returns if ``conn`` is in autocommit (the group-commit writer's
    choice: one round trip and one WAL flush per batch). Otherwise the caller commits.
    """
    results: list[Stored | None] = [None] * len(events)
    first: dict[tuple[str, str, str], int] = {}
    for n, event in enumerate(events):
        first.setdefault(event.identity, n)
    leaders = sorted(set(first.values()), key=lambda n: events[n].keys[0])  # one lock order for every writer
    if _is_postgres(conn):
        stored = await _pg_insert(conn, [events[n] for n in leaders])
    else:
        stored = {}
        for n in leaders:
            event = events[n]
            if await _subscription_allows(conn, event):
                stored[event.keys[0]] = await store_event(
                    conn, workspace_id=event.workspace_id, event_type=event.event_type, body=event.body,
                    source=event.source, entity_key=event.entity_key, source_ref=event.source_ref,
                    now=event.received_at, window=event.window,
                )
    extra: dict[str, int] = {}
    for n, event in enumerate(events):
        leader = events[first[event.identity]]
        outcome = stored.get(leader.keys[0])
        if outcome is None:
            continue  # refused: the subscription is gone
        if n == first[event.identity]:
            results[n] = outcome
        else:
            results[n] = Stored(id=None, duplicate=True)
            extra[leader.keys[0]] = extra.get(leader.keys[0], 0) + 1
    if extra:
        await _count_deliveries(conn, extra, {e.keys[0]: e.keys[1] for e in events})
    return results


async def _pg_insert(conn: AsyncConnection, events: Sequence[NewEvent]) -> dict[str, Stored]:
    if not events:
        return {}
    batch = orjson.dumps([
        {
            "workspace_id": e.workspace_id, "event_type": e.event_type, "source": str(e.source),
            "source_ref": e.source_ref, "dedup_key": e.keys[0], "previous_key": e.keys[1],
            "entity_key": e.entity_key, "body": e.body.decode("utf-8"), "received_at": e.received_at,
            "subscription_id": e.subscription_id, "token_digest": e.token_digest, "addon_id": e.addon_id,
        }
        for e in events
    ]).decode()
    # Straight to asyncpg: the statement text is fixed and prepared once per connection, and
    # SQLAlchemy's execution layer costs more CPU per batch than the statement itself
    # (docs/benchmarks.md). Outside a transaction the statement commits by itself.
    driver = await _driver(conn)
    rows = await driver.fetch(_PG_BATCH_INSERT, batch)
    stored = {row[0]: Stored(id=None if row[1] is None else int(row[1]), duplicate=row[1] is None) for row in rows}
    duplicates = {key: 1 for key, s in stored.items() if s.duplicate}
    if duplicates:
        await _count_deliveries(conn, duplicates, {e.keys[0]: e.keys[1] for e in events})
    return stored


async def _driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection under ``conn``."""
    return (await conn.get_raw_connection()).driver_connection


def is_driver_outage(exc: BaseException) -> bool:
    """True for asyncpg errors that mean the server or the connection is gone (raised by
    :func:`store_batch` on PostgreSQL, which bypasses SQLAlchemy's error wrapping)."""
    return isinstance(exc, _ASYNCPG_OUTAGES)


async def _count_deliveries(conn: AsyncConnection, counts: dict[str, int], previous: dict[str, str]) -> None:
    """Add redeliveries to the stored row (under its key or the previous bucket's)."""
    keys = sorted(counts)
    if _is_postgres(conn):
        driver = await _driver(conn)
        await driver.execute(
            _PG_COUNT_DELIVERIES, keys + [previous[k] for k in keys], [counts[k] for k in keys] * 2
        )
        return
    table = _INBOX
    for key in keys:
        await conn.execute(
            update(table)
            .where(table.c.dedup_key.in_([key, previous[key]]))
            .values(deliveries=table.c.deliveries + counts[key])
        )


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
    e = _INBOX
    earlier = _INBOX.alias("earlier")
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
    e = _INBOX
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
    e = _INBOX
    result = await session.execute(
        update(e)
        .where(e.c.id == event_id, e.c.locked_by == worker_id, e.c.status == InboxStatus.PROCESSING)
        .values(status=InboxStatus.DONE, processed_at=now or utcnow(), locked_by=None, locked_until=None, last_error=None)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def backoff_seconds(attempts: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: about base·2^(n-1), never above cap."""
    rng = rng or random.Random()  # noqa: S311 - jitter, not security
    ideal = min(cap, base * 2.0 ** max(0, attempts - 1))
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
    e = _INBOX
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
    e = _INBOX
    await session.execute(
        update(e)
        .where(e.c.id.in_(list(event_ids)), e.c.locked_by == worker_id, e.c.status == InboxStatus.PROCESSING)
        .values(status=InboxStatus.PENDING, locked_by=None, locked_until=None, attempts=e.c.attempts - 1)
    )


async def replay_dead(
    session: AsyncSession, *, workspace_id: str | None = None, ids: Sequence[int] | None = None
) -> int:
    """Put dead letters back in the queue with a fresh attempt budget."""
    e = _INBOX
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
    e = _INBOX
    stmt = select(e.c.status, func.count()).group_by(e.c.status)
    if workspace_id is not None:
        stmt = stmt.where(e.c.workspace_id == workspace_id)
    counts = {str(status): int(n) for status, n in (await session.execute(stmt)).all()}
    return {status.value: counts.get(status.value, 0) for status in InboxStatus}


async def cancel_workspace(session: AsyncSession, workspace_id: str) -> int:
    """Drop the unfinished events of an uninstalled workspace."""
    e = _INBOX
    result = await session.execute(
        e.delete().where(e.c.workspace_id == workspace_id, e.c.status.in_([InboxStatus.PENDING, InboxStatus.PROCESSING]))
    )
    return int(getattr(result, "rowcount", 0) or 0)


