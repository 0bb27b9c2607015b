"""The durable inbox: accept once, claim safely, retry with backoff, dead-letter, replay.

Deduplication. Clockify sends no delivery id and no version (docs/clockify.md), so equal
bodies can be a retry or a genuine change back (a rename A → B → A, delete → restore →
delete). An event is a redelivery only if it has the event type and the exact body of the
*latest* event stored for the same entity (``entity_key``; events without one: the same
event type) and arrives at most ``window`` seconds (``WEBHOOKS__DEDUP_WINDOW_SECONDS``)
after it; the redelivery is counted on that row (``deliveries``). Any other event of the
entity in between, or a longer gap, makes an equal body a new event, applied and sent to
flows again. The unique ``dedup_key`` names the entity's latest event at insert time, so
two copies of one delivery racing through different writers or instances are stored once.
A sender that does name its deliveries (custom webhooks' ``webhook-id``) passes that
``delivery_id`` instead: the key is then (workspace, source, source ref, id), whatever the
body and however late.

Claiming. Workers claim PENDING rows whose next attempt is due, plus PROCESSING rows
whose lease expired (their worker died), only for ACTIVE installations, and never an
event while an older event of the same entity is still unfinished (per-entity order).
PostgreSQL uses ``FOR UPDATE SKIP LOCKED``; SQLite's single writer serialises claims.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, cast

import asyncpg
import orjson
from sqlalchemy import Table, and_, bindparam, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from clockify_core.db.base import Base, utcnow
from clockify_core.db.dialect import insert_for, is_postgres, skip_locked
from clockify_core.db.queue import LeasedQueue, retry_delay
from clockify_core.installations.models import (
    Installation,
    InstallationStatus,
    SubscriptionStatus,
    WebhookSubscription,
)
from clockify_core.webhooks.models import EventSource, InboxEvent, InboxStatus

# Redeliveries are recognised for this long after the first delivery (docs/clockify.md:
# Clockify documents no retry policy, so the window is a setting, WEBHOOKS__DEDUP_WINDOW_SECONDS).
DEFAULT_DEDUP_WINDOW = 300.0


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


_INBOX = _table(InboxEvent)
QUEUE = LeasedQueue(_INBOX, waiting=InboxStatus.PENDING, running=InboxStatus.PROCESSING, due_at="next_attempt_at")
# Connection lost, server shutting down or not accepting connections (SQLSTATE classes 08, 57).
_ASYNCPG_OUTAGES = (asyncpg.InterfaceError, asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError)


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def event_key(base: str, previous_id: int | None) -> str:
    """The dedup key of an event whose stream's latest stored event was ``previous_id``.

    ``base`` names the stream, the event type, the body digest and the event's place among
    the events of its stream written by one statement (see :meth:`NewEvent.key_base`).
    PostgreSQL's batch INSERT computes the same hash in SQL.
    """
    return hashlib.sha256(f"{base}|{previous_id or 0}".encode()).hexdigest()


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

    A redelivery is, with ``delivery_id`` (the sender's own id of the delivery), the same id
    from the same ``source`` and ``source_ref``; without, the same event type and body as the
    latest event stored for the same entity, received at most ``window`` seconds after it.
    """
    now = now or utcnow()
    if delivery_id is None:
        event = NewEvent(
            workspace_id=workspace_id, event_type=event_type, body=body, received_at=now, source=source,
            entity_key=entity_key, source_ref=source_ref, window=window,
        )
        return await _store_one(session, event, offset=0, deliveries=1)
    key = delivery_key(workspace_id, str(source), source_ref, delivery_id)
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
    stmt = insert_for(session)(table).values(**values).on_conflict_do_nothing(index_elements=["dedup_key"]).returning(table.c.id)
    inserted = (await session.execute(stmt)).scalar()
    if inserted is not None:
        return Stored(id=int(inserted), duplicate=False)
    await session.execute(update(table).where(table.c.dedup_key == key).values(deliveries=table.c.deliveries + 1))
    return Stored(id=None, duplicate=True)


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
    def stream(self) -> str:
        """The events a redelivery is compared with: the entity's, else the event type's."""
        # \x1f (unit separator) cannot occur in the parts, and PostgreSQL text holds it (unlike NUL).
        if self.entity_key is not None:
            return f"{self.workspace_id}\x1f{self.entity_key}"
        return f"{self.workspace_id}\x1f\x1f{self.source}\x1f{self.event_type}"

    @cached_property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def key_base(self, offset: int) -> str:
        return f"{self.stream}|{self.event_type}|{body_digest(self.body)}|{offset}"

    def repeats(self, event_type: str, body: str, received_at: datetime) -> bool:
        """True if this is that event (type, body text, arrival) delivered again within the window."""
        return (
            self.event_type == event_type
            and self.text == body
            and (self.received_at - received_at).total_seconds() <= self.window
        )


@dataclass(slots=True)
class _Leader:
    """The first of a run of equal deliveries of one stream within a batch."""

    index: int
    offset: int  # its place among the batch's leaders of the same stream
    deliveries: int = 1


# One statement for a whole batch on PostgreSQL. The rows travel as one JSON document: its
# text (and so asyncpg's prepared statement) is the same whatever the batch size, and
# encoding it is one orjson call where array parameters cost several Python checks per
# value. `allowed` re-checks the webhook subscription. `placed` finds each event's stream's
# latest stored event (one index probe): a first-of-its-stream event with that event's type
# and body within the window is a redelivery and not inserted; every other event gets a key
# naming that latest event, so two racing copies of one delivery collide on the unique key
# and are stored once, while a different event in between (A, B, A) makes a new key.
_PG_BATCH_INSERT = """
WITH v AS (
    SELECT * FROM json_to_recordset($1::json) AS v(
        ord int, workspace_id text, event_type text, source text, source_ref text, key_base text, first boolean,
        entity_key text, body text, received_at timestamptz, dedup_window float8, deliveries int,
        subscription_id int, token_digest text, addon_id text
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
placed AS (
    SELECT a.*, p.id AS previous_id,
           coalesce(a.first AND p.event_type = a.event_type AND p.body = a.body
                    AND p.received_at >= a.received_at - a.dedup_window * interval '1 second', false) AS redelivery,
           encode(sha256(convert_to(a.key_base || '|' || coalesce(p.id, 0)::text, 'UTF8')), 'hex') AS dedup_key
    FROM allowed a LEFT JOIN LATERAL (
        (SELECT e.id, e.event_type, e.body, e.received_at FROM inbox_events e
         WHERE a.entity_key IS NOT NULL AND e.workspace_id = a.workspace_id AND e.entity_key = a.entity_key
         ORDER BY e.id DESC LIMIT 1)
        UNION ALL
        (SELECT e.id, e.event_type, e.body, e.received_at FROM inbox_events e
         WHERE a.entity_key IS NULL AND e.workspace_id = a.workspace_id AND e.entity_key IS NULL
           AND e.source = a.source AND e.event_type = a.event_type
         ORDER BY e.id DESC LIMIT 1)
    ) p ON true
),
inserted AS (
    INSERT INTO inbox_events (workspace_id, event_type, source, source_ref, dedup_key, entity_key, body, status,
                              attempts, deliveries, next_attempt_at, received_at)
    SELECT a.workspace_id, a.event_type, a.source, a.source_ref, a.dedup_key, a.entity_key, a.body, 'PENDING',
           0, a.deliveries, a.received_at, a.received_at
    FROM placed a
    WHERE NOT a.redelivery
    ORDER BY a.ord
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING id, dedup_key
)
SELECT a.ord, i.id, a.previous_id, a.redelivery, a.dedup_key
FROM placed a LEFT JOIN inserted i ON i.dedup_key = a.dedup_key
"""

# Redeliveries counted on the row they repeat, by id or (a racing copy) by key; rows are
# locked in id order so concurrent writers cannot deadlock.
_PG_COUNT_DELIVERIES = """
WITH c AS (
    SELECT c.id, c.n FROM unnest($1::bigint[], $2::int[]) AS c(id, n)
    UNION ALL
    SELECT e.id, c.n FROM unnest($3::text[], $4::int[]) AS c(k, n) JOIN inbox_events e ON e.dedup_key = c.k
),
t AS (SELECT c.id, sum(c.n)::int AS n FROM c GROUP BY c.id),
locked AS (SELECT e.id FROM inbox_events e JOIN t ON t.id = e.id ORDER BY e.id FOR UPDATE OF e)
UPDATE inbox_events AS e SET deliveries = e.deliveries + t.n
FROM t JOIN locked l ON l.id = t.id
WHERE e.id = t.id
"""


async def _subscription_allows(conn: AsyncSession | AsyncConnection, event: NewEvent) -> bool:
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


async def _store_one(
    conn: AsyncSession | AsyncConnection, event: NewEvent, *, offset: int, deliveries: int
) -> Stored:
    """One event by separate statements, with the semantics of ``_PG_BATCH_INSERT``."""
    e = _INBOX
    stream = e.c.workspace_id == event.workspace_id
    if event.entity_key is not None:
        stream = and_(stream, e.c.entity_key == event.entity_key)
    else:
        stream = and_(stream, e.c.entity_key.is_(None), e.c.source == str(event.source), e.c.event_type == event.event_type)
    latest = (
        await conn.execute(
            select(e.c.id, e.c.event_type, e.c.body, e.c.received_at).where(stream).order_by(e.c.id.desc()).limit(1)
        )
    ).first()
    if latest is not None and offset == 0 and event.repeats(latest.event_type, latest.body, latest.received_at):
        await _count_deliveries(conn, ids={int(latest.id): deliveries}, keys={})
        return Stored(id=None, duplicate=True)
    key = event_key(event.key_base(offset), None if latest is None else int(latest.id))
    values = {
        "workspace_id": event.workspace_id,
        "event_type": event.event_type,
        "source": str(event.source),
        "source_ref": event.source_ref,
        "dedup_key": key,
        "entity_key": event.entity_key,
        "body": event.text,
        "status": InboxStatus.PENDING.value,
        "attempts": 0,
        "deliveries": deliveries,
        "next_attempt_at": event.received_at,
        "received_at": event.received_at,
    }
    stmt = insert_for(conn)(e).values(**values).on_conflict_do_nothing(index_elements=["dedup_key"]).returning(e.c.id)
    inserted = (await conn.execute(stmt)).scalar()
    if inserted is not None:
        return Stored(id=int(inserted), duplicate=False)
    await _count_deliveries(conn, ids={}, keys={key: deliveries})  # a racing copy stored it first
    return Stored(id=None, duplicate=True)


async def store_batch(conn: AsyncConnection, events: Sequence[NewEvent]) -> list[Stored | None]:
    """Store many events; ``None`` where the subscription check refused.

    Same deduplication as :func:`store_event`: within the batch, an event equal to the one
    before it in its stream is a redelivery of it; an equal body after another event of the
    stream (A, B, A) is a new event. Events of one stream get ids in arrival order. On
    PostgreSQL the events go in one statement, which is durable when it returns if ``conn``
    is in autocommit (the group-commit writer's choice: one round trip and one WAL flush per
    batch). Otherwise the caller commits.
    """
    leader_of: list[_Leader] = []
    runs: dict[str, list[_Leader]] = {}
    for n, event in enumerate(events):
        run = runs.setdefault(event.stream, [])
        previous = events[run[-1].index] if run else None
        if previous is not None and event.repeats(previous.event_type, previous.text, previous.received_at):
            run[-1].deliveries += 1
            leader_of.append(run[-1])
        else:
            run.append(_Leader(index=n, offset=len(run)))
            leader_of.append(run[-1])
    # One order for every writer (stream, then place in it), so racing batches cannot deadlock
    # on each other's keys, and a stream's events get ascending ids.
    leaders = [leader for stream in sorted(runs) for leader in runs[stream]]
    if is_postgres(conn):
        stored = await _pg_insert(conn, events, leaders)
    else:
        stored = {}
        for leader in leaders:
            event = events[leader.index]
            if await _subscription_allows(conn, event):
                stored[leader.index] = await _store_one(
                    conn, event, offset=leader.offset, deliveries=leader.deliveries
                )
    results: list[Stored | None] = []
    for n, leader in enumerate(leader_of):
        outcome = stored.get(leader.index)
        if outcome is None or n == leader.index:
            results.append(outcome)  # None: refused, the subscription is gone
        else:
            results.append(Stored(id=None, duplicate=True))
    return results


async def _pg_insert(conn: AsyncConnection, events: Sequence[NewEvent], leaders: Sequence[_Leader]) -> dict[int, Stored]:
    if not leaders:
        return {}
    batch = orjson.dumps([
        {
            "ord": ord_, "workspace_id": e.workspace_id, "event_type": e.event_type, "source": str(e.source),
            "source_ref": e.source_ref, "key_base": e.key_base(leader.offset), "first": leader.offset == 0,
            "entity_key": e.entity_key, "body": e.text, "received_at": e.received_at, "dedup_window": e.window,
            "deliveries": leader.deliveries, "subscription_id": e.subscription_id, "token_digest": e.token_digest,
            "addon_id": e.addon_id,
        }
        for ord_, leader in enumerate(leaders)
        for e in (events[leader.index],)
    ]).decode()
    # Straight to asyncpg: the statement text is fixed and prepared once per connection, and
    # SQLAlchemy's execution layer costs more CPU per batch than the statement itself
    # (docs/benchmarks.md). Outside a transaction the statement commits by itself.
    driver = await _driver(conn)
    rows = await driver.fetch(_PG_BATCH_INSERT, batch)
    stored: dict[int, Stored] = {}
    by_id: dict[int, int] = {}
    by_key: dict[str, int] = {}
    for ord_, row_id, previous_id, redelivery, key in rows:
        leader = leaders[ord_]
        stored[leader.index] = Stored(id=None if row_id is None else int(row_id), duplicate=row_id is None)
        if redelivery:
            by_id[int(previous_id)] = by_id.get(int(previous_id), 0) + leader.deliveries
        elif row_id is None:
            by_key[key] = leader.deliveries  # a racing copy stored it first
    if by_id or by_key:
        await _count_deliveries(conn, ids=by_id, keys=by_key)
    return stored


async def _driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection under ``conn``."""
    return (await conn.get_raw_connection()).driver_connection


def is_driver_outage(exc: BaseException) -> bool:
    """True for asyncpg errors that mean the server or the connection is gone (raised by
    :func:`store_batch` on PostgreSQL, which bypasses SQLAlchemy's error wrapping)."""
    return isinstance(exc, _ASYNCPG_OUTAGES)


async def _count_deliveries(conn: AsyncSession | AsyncConnection, *, ids: dict[int, int], keys: dict[str, int]) -> None:
    """Add redeliveries to the rows they repeat: by row id, or by dedup key."""
    if is_postgres(conn) and isinstance(conn, AsyncConnection):
        driver = await _driver(conn)
        await driver.execute(
            _PG_COUNT_DELIVERIES, list(ids), list(ids.values()), list(keys), list(keys.values())
        )
        return
    table = _INBOX
    for row_id in sorted(ids):
        await conn.execute(
            update(table).where(table.c.id == row_id).values(deliveries=table.c.deliveries + ids[row_id])
        )
    for key in sorted(keys):
        await conn.execute(
            update(table).where(table.c.dedup_key == key).values(deliveries=table.c.deliveries + keys[key])
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
    active = exists().where(
        Installation.workspace_id == e.c.workspace_id, Installation.status == InstallationStatus.ACTIVE
    )
    blocked = exists().where(
        earlier.c.workspace_id == e.c.workspace_id,
        earlier.c.entity_key == e.c.entity_key,
        earlier.c.id < e.c.id,
        earlier.c.status.in_([InboxStatus.PENDING, InboxStatus.PROCESSING]),
    )
    return and_(QUEUE.due(now), active, or_(e.c.entity_key.is_(None), ~blocked))


async def claim(
    session: AsyncSession, *, worker_id: str, limit: int, lease_seconds: float, now: datetime | None = None
) -> list[ClaimedEvent]:
    """Claim up to ``limit`` due events for ``worker_id``; the caller commits at once."""
    now = now or utcnow()
    e = _INBOX
    candidates = skip_locked(session, select(e.c.id).where(_claimable(now)).order_by(e.c.id).limit(limit), of=e)
    stmt = (
        update(e)
        .where(e.c.id.in_(candidates.scalar_subquery()))
        .values(**QUEUE.lease(worker_id, now=now, seconds=lease_seconds))
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


# Built once: it runs once per event, and building it each time was half of its CPU in the
# inbox worker's profile (docs/benchmarks.md, "A quiet machine").
_FINISH = (
    update(_INBOX)
    .where(*QUEUE.held(bindparam("event_id"), bindparam("worker_id")))  # type: ignore[arg-type]
    .values(status=InboxStatus.DONE, processed_at=bindparam("at"), **QUEUE.released, last_error=None)
)


async def finish(session: AsyncSession, event_id: int, *, worker_id: str, now: datetime | None = None) -> bool:
    """Mark DONE in the transaction that applied the event. False: the lease was lost, so
    the caller must roll back (another worker owns the event now)."""
    result = await session.execute(_FINISH, {"event_id": event_id, "worker_id": worker_id, "at": now or utcnow()})
    return int(getattr(result, "rowcount", 0) or 0) == 1


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
    delay = retry_delay(attempts, max_attempts=max_attempts, base=base, cap=cap)
    values = QUEUE.retry_at(now + timedelta(seconds=delay or 0))
    if delay is None:
        values["status"] = InboxStatus.DEAD
    await session.execute(
        update(e).where(e.c.id == event_id, e.c.locked_by == worker_id).values(**values, last_error=error[:2000])
    )
    return str(values["status"])


async def release(session: AsyncSession, event_ids: Sequence[int], *, worker_id: str) -> None:
    """Give claimed events back untouched (shutdown, or a paused workspace)."""
    if not event_ids:
        return
    e = _INBOX
    await session.execute(
        update(e)
        .where(e.c.id.in_(list(event_ids)), e.c.locked_by == worker_id, e.c.status == InboxStatus.PROCESSING)
        .values(**QUEUE.given_back())
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


