"""Bulk writes of pulled pages into the mirror: one transaction per batch.

PostgreSQL: the batch is copied (``COPY``, binary, through asyncpg's
``copy_records_to_table`` on the SQLAlchemy session's own connection) into a
temporary staging table shaped like the target, then merged with one
``INSERT … SELECT … ON CONFLICT DO UPDATE``. The staging table lives per connection
and empties itself at commit (``ON COMMIT DELETE ROWS``).

SQLite: :meth:`MirrorWriter.upsert_snapshots` in chunks small enough for SQLite's
limit of bound parameters per statement.

Bootstrap and backfill load mostly new rows, where the staging step only adds cost:
their writer starts *optimistic* and copies a batch straight into the target table
inside a savepoint. A batch that meets an existing key (an entry a webhook wrote before
the load reached it) rolls back to the savepoint and goes through the staging merge, and
the next batch tries the direct COPY again; :data:`DIRECT_GIVE_UP` such batches in a row
(a re-run over rows already loaded) switch the job to the merge for good. Rows the job
itself wrote ahead of the listing that returns them again (a bootstrap's running timers:
``upsert(ahead=True)``) are merged within their batch without a failed try. For rows that
are all new both paths store the same thing. A job's progress counts the rows each path
wrote (``direct_rows``, ``merged_rows``).

Both apply "snapshot" semantics (docs/schema.md): the API's answer is the truth, so
content is overwritten and ``deleted_at`` cleared. Rows are keyed by the mirror's
primary key, so writing a page twice changes nothing: pulls never duplicate.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
import structlog
from sqlalchemy import JSON, Table, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clockify_core.db.base import utcnow
from clockify_core.mirror.mapping import TYPED_VALUES, row_values
from clockify_core.mirror.writer import MirrorWriter, table_for
from clockify_core.observability.metrics import Metrics
from clockify_core.payloads import entity_id
from clockify_core.sync.progress import Progress

log = structlog.get_logger(__name__)

Body = Mapping[str, Any]
UNIQUE_VIOLATION = "23505"  # SQLSTATE, as asyncpg reports it
# SQLite (3.32+) binds at most 32,766 parameters per statement.
_SQLITE_PARAMS = 32_000
_ID_CHUNK = 5_000  # ids per IN list, well under any driver's parameter limit
# Batches in a row that meet existing keys before an optimistic writer stops trying COPY.
DIRECT_GIVE_UP = 2


# Bookkeeping columns of a COPY record built from a tuple mapping, after the typed ones.
_TAIL = ("workspace_id", "id", "raw", "written_at", "written_by", "last_event", "deleted_at")


class _PgTable:
    """Column order, JSON columns and the two statements for one target table."""

    def __init__(self, table: Table, kind: str) -> None:
        self.table = table
        self.kind = kind
        json = frozenset(c.name for c in table.columns if isinstance(c.type, JSON))
        typed = TYPED_VALUES.get(kind)
        self.values = typed[1] if typed else None
        if typed is None:
            self.columns = [c.name for c in table.columns]
        else:
            self.columns = [*typed[0], *_TAIL]
            assert sorted(self.columns) == sorted(c.name for c in table.columns), table.name
        self.plan = [(c, c in json) for c in self.columns]
        keys = [c.name for c in table.primary_key.columns]
        self.stage = f"sync_stage_{table.name}"
        cols = ", ".join(f'"{c}"' for c in self.columns)
        updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in self.columns if c not in keys)
        # Table and column names come from our own models, never from input.
        self.create = text(
            f'CREATE TEMP TABLE IF NOT EXISTS "{self.stage}" (LIKE "{table.name}" INCLUDING DEFAULTS) '
            "ON COMMIT DELETE ROWS"
        )
        self.merge = text(
            f'INSERT INTO "{table.name}" ({cols}) SELECT {cols} FROM "{self.stage}" '  # noqa: S608
            f'ON CONFLICT ({", ".join(keys)}) DO UPDATE SET {updates}'
        )

    def records(
        self, workspace_id: str, bodies: Sequence[Body], *, written_by: str, now: datetime
    ) -> dict[str, tuple[Any, ...]]:
        """COPY records keyed by id (bodies without one dropped; a later copy of an id wins)."""
        dumps, kind = orjson.dumps, self.kind
        out: dict[str, tuple[Any, ...]] = {}
        values = self.values
        if values is None:
            plan = self.plan
            for body in bodies:
                row_id = entity_id(kind, body)
                if row_id is not None:
                    row = row_values(kind, workspace_id, row_id, body)
                    row.update(written_at=now, written_by=written_by, last_event=None, deleted_at=None)
                    out[row_id] = tuple([dumps(row.get(c)).decode() if is_json else row.get(c) for c, is_json in plan])
            return out
        # The tuple mapping (JSON columns already JSON text): no intermediate dict per row, the
        # body's JSON dumped once as ``raw``.
        for body in bodies:
            row_id = body.get("id")
            if type(row_id) is not str or not row_id:  # the API's own id first; entity_id knows the rest
                row_id = entity_id(kind, body)
                if row_id is None:
                    continue
            raw = dumps(body if type(body) is dict else dict(body)).decode()
            out[row_id] = (*values(body), workspace_id, row_id, raw, now, written_by, None, None)
        return out


_PG_TABLES: dict[str, _PgTable] = {}


def _pg_table(kind: str) -> _PgTable:
    found = _PG_TABLES.get(kind)
    if found is None:
        found = _PG_TABLES[kind] = _PgTable(table_for(kind), kind)
    return found


class BulkWriter:
    """Writes batches of API bodies of one kind; each call is its own transaction."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        postgres: bool,
        metrics: Metrics | None = None,
        direct: bool = False,
        guard: Callable[[AsyncSession], Awaitable[None]] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.sessions = sessions
        self.postgres = postgres
        self.metrics = metrics
        # Awaited first in every write transaction (a job's JobContext.ensure_live): it raises
        # to write nothing once the job was cancelled, and holds off a concurrent uninstall.
        self.guard = guard
        # Optimistic loading (bootstrap, backfill): see the module doc.
        self.direct = direct and postgres
        self.conflicts = 0  # batches in a row whose direct COPY met an existing key
        self.ahead: dict[str, set[str]] = {}  # ids by kind written by upsert(ahead=True)
        self.progress = progress

    @contextlib.asynccontextmanager
    async def _begin(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions.begin() as session:
            if self.guard is not None:
                await self.guard(session)
            yield session

    def prepare(
        self, kind: str, workspace_id: str, bodies: Sequence[Body], *, written_by: str, now: datetime | None = None
    ) -> dict[str, Any]:
        """Bodies turned into what :meth:`write` sends, keyed by id (a later copy of an id wins).

        On PostgreSQL these are COPY records, so a buffered batch holds compact tuples
        rather than parsed JSON; on SQLite the bodies themselves. Bodies without an id are
        dropped.
        """
        now = now or utcnow()
        prepared: dict[str, Any] = {}
        if not self.postgres:
            for body in bodies:
                row_id = entity_id(kind, body)
                if row_id is not None:
                    prepared[row_id] = body
            return prepared
        return _pg_table(kind).records(workspace_id, bodies, written_by=written_by, now=now)

    async def upsert(
        self, kind: str, workspace_id: str, bodies: Sequence[Body], *, written_by: str, now: datetime | None = None,
        ahead: bool = False,
    ) -> int:
        """Write ``bodies`` in one transaction; returns the rows written.

        ``ahead``: these rows are written ahead of a listing that will return them again (a
        bootstrap's running timers), so a later batch holding one of them merges that row
        instead of meeting it in a direct COPY. Keep such writes small: their ids are kept.
        """
        prepared = self.prepare(kind, workspace_id, bodies, written_by=written_by, now=now)
        if ahead:
            self.written_ahead(kind, prepared)
        return await self.write(kind, workspace_id, prepared, written_by=written_by)

    def written_ahead(self, kind: str, ids: Iterable[str]) -> None:
        """Rows of ``kind`` already written ahead of the listing (by an earlier claim of the
        job, say): a batch holding one merges it instead of meeting it in a direct COPY."""
        if self.direct:
            self.ahead.setdefault(kind, set()).update(ids)

    async def write(self, kind: str, workspace_id: str, prepared: Mapping[str, Any], *, written_by: str) -> int:
        """Write a prepared batch (:meth:`prepare`) in one transaction; returns the rows written."""
        if not prepared:
            return 0
        if not self.postgres:
            return await self._write_sqlite(kind, workspace_id, list(prepared.values()), written_by=written_by)
        target = _pg_table(kind)
        records = list(prepared.values())
        copied: list[Any] = []
        merged = records
        if self.direct:
            copied, merged = records, []
            ahead = self.ahead.get(kind)
            if ahead and not ahead.isdisjoint(prepared):
                merged = [prepared[k] for k in prepared.keys() & ahead]
                copied = [record for k, record in prepared.items() if k not in ahead]
        async with self._begin() as session:
            # The first statement also opens the transaction the COPY then joins.
            await session.execute(target.create)
            connection = await session.connection()
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None  # the asyncpg connection under SQLAlchemy's adapter
            if copied:
                try:
                    # asyncpg's own nested transaction: a SAVEPOINT it can roll back to after the
                    # failed COPY (SQLAlchemy's would prepare its ROLLBACK in the aborted transaction).
                    async with raw.transaction():
                        await raw.copy_records_to_table(target.table.name, records=copied, columns=target.columns)
                    self.conflicts = 0
                except Exception as exc:
                    if getattr(exc, "sqlstate", None) != UNIQUE_VIOLATION:
                        raise
                    # A row exists already: this batch goes through the merge, and after
                    # DIRECT_GIVE_UP such batches in a row, the rest of the job too.
                    copied, merged = [], records
                    self.conflicts += 1
                    self.direct = self.conflicts < DIRECT_GIVE_UP
                    log.info("sync.direct_copy_conflict", table=target.table.name, workspace_id=workspace_id,
                             detail=getattr(exc, "detail", None), direct=self.direct)
            if merged:
                await raw.copy_records_to_table(target.stage, records=merged, columns=target.columns)
                await session.execute(target.merge)
        if self.progress is not None:
            if copied:
                self.progress.loaded(len(copied), direct=True)
            if merged:
                self.progress.loaded(len(merged), direct=False)
        if self.metrics is not None:
            self.metrics.rows_upserted.labels(target.table.name, written_by).inc(len(records))
        return len(records)

    async def _write_sqlite(self, kind: str, workspace_id: str, bodies: Sequence[Body], *, written_by: str) -> int:
        columns = len(table_for(kind).columns)
        chunk = max(1, _SQLITE_PARAMS // columns)
        written = 0
        now = utcnow()
        async with self._begin() as session:
            writer = MirrorWriter(session, metrics=self.metrics)
            for at in range(0, len(bodies), chunk):
                written += await writer.upsert_snapshots(
                    kind, workspace_id, bodies[at : at + chunk], written_by=written_by, now=now
                )
        return written

    async def tombstone(self, kind: str, workspace_id: str, ids: Sequence[str], *, written_by: str) -> int:
        """Mark rows deleted by id (the change feed, or a listing that no longer has them)."""
        if not ids:
            return 0
        count = 0
        async with self._begin() as session:
            writer = MirrorWriter(session, metrics=self.metrics)
            for at in range(0, len(ids), 1000):
                count += await writer.mark_deleted(kind, workspace_id, ids[at : at + 1000], written_by=written_by)
        return count

    async def tombstone_unseen(
        self,
        kind: str,
        workspace_id: str,
        *,
        before: datetime,
        written_by: str,
        start: datetime | None = None,
        end: datetime | None = None,
        user_ids: Sequence[str] | None = None,
    ) -> int:
        """After a complete listing that began at ``before``: rows it did not rewrite are gone.

        Time entries are limited to ``start <= start_at < end`` (and ``user_ids``); other
        kinds cover the whole kind.
        """
        table = table_for(kind)
        clauses = [table.c.workspace_id == workspace_id, table.c.deleted_at.is_(None), table.c.written_at < before]
        if "kind" in table.c:
            clauses.append(table.c.kind == kind)
        if start is not None:
            clauses.append(table.c.start_at >= start)
        if end is not None:
            clauses.append(table.c.start_at < end)
        now = utcnow()
        # A workspace can list more users than a statement takes parameters: one UPDATE per chunk.
        groups: list[list[str] | None] = [None]
        if user_ids is not None:
            listed = list(user_ids)
            groups = [listed[i:i + _ID_CHUNK] for i in range(0, len(listed), _ID_CHUNK)]
        count = 0
        async with self._begin() as session:
            for group in groups:
                where = clauses if group is None else [*clauses, table.c.user_id.in_(group)]
                result = await session.execute(
                    update(table).where(*where).values(deleted_at=now, written_at=now, written_by=written_by,
                                                       last_event=None)
                )
                count += int(getattr(result, "rowcount", 0) or 0)
        if self.metrics is not None and count:
            self.metrics.rows_upserted.labels(table.name, written_by).inc(count)
        return count

    async def count_live(self, kind: str, workspace_id: str) -> int:
        table = table_for(kind)
        clauses = [table.c.workspace_id == workspace_id, table.c.deleted_at.is_(None)]
        if "kind" in table.c:
            clauses.append(table.c.kind == kind)
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(table).where(*clauses)) or 0)
