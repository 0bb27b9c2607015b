"""Writing the mirror: event semantics on top of dialect-neutral upserts.

Rules (docs/schema.md explains them to users):
- a ``NEW_*`` event never overwrites an existing row: arriving late, it is stale;
- updates overwrite content but never clear ``deleted_at``: a late update after a
  delete does not resurrect the row; ``*_RESTORED`` does;
- a delete keeps the last known content and sets ``deleted_at``;
- bodies merge into the stored raw body: what a body omits keeps its stored value.
  Partial bodies (``USER_UPDATED``, ``EXPENSE_UPDATED``...) depend on it, and webhook
  bodies lack fields the API serves (a time entry's ``type``, a client's ``note``, a
  task's rates), which an update must not blank;
- a user event that changes the workspace membership (``USER_JOINED_WORKSPACE``,
  ``USER_ACTIVATED_``/``USER_DEACTIVATED_ON_WORKSPACE``) records its status, which the
  body itself does not carry;
- a snapshot (the entity as the API returns it now, or its absence) is the truth and
  overrides all of the above.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core.catalog import Action, EventSpec
from clockify_core.db.base import utcnow
from clockify_core.db.dialect import insert_for
from clockify_core.mirror.mapping import row_values, with_membership_status
from clockify_core.mirror.models import TYPED_MODELS, Entity
from clockify_core.observability.metrics import Metrics
from clockify_core.payloads import Body, entity_id

_BOOKKEEPING = ("written_at", "written_by", "last_event")
# The membership status a user event leaves, which its body does not say (docs/clockify.md#webhook-payloads).
_MEMBERSHIP_AFTER = {
    "USER_JOINED_WORKSPACE": "ACTIVE",
    "USER_ACTIVATED_ON_WORKSPACE": "ACTIVE",
    "USER_DEACTIVATED_ON_WORKSPACE": "INACTIVE",
}


def table_for(kind: str) -> Table:
    model = TYPED_MODELS.get(kind)
    table = model.__table__ if model is not None else Entity.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


def _key_columns(table: Table) -> list[str]:
    return [c.name for c in table.primary_key.columns]


def _key_filter(table: Table, kind: str, workspace_id: str, row_id: str) -> list[Any]:
    clauses = [table.c.workspace_id == workspace_id, table.c.id == row_id]
    if "kind" in table.c:
        clauses.append(table.c.kind == kind)
    return clauses


def _on_conflict(stmt: Any, table: Table, on_conflict: str, columns: tuple[str, ...], restore: bool) -> Any:
    """``stmt`` (an INSERT of ``columns``) with the ON CONFLICT clause of :meth:`MirrorWriter._upsert`."""
    keys = _key_columns(table)
    if on_conflict == "nothing":
        return stmt.on_conflict_do_nothing(index_elements=keys)
    if on_conflict == "tombstone":
        return stmt.on_conflict_do_update(
            index_elements=keys,
            set_={
                "deleted_at": func.coalesce(table.c.deleted_at, stmt.excluded.deleted_at),
                **{name: stmt.excluded[name] for name in _BOOKKEEPING},
            },
        )
    updated = [c for c in columns if c not in keys and (c != "deleted_at" or restore)]
    return stmt.on_conflict_do_update(index_elements=keys, set_={name: stmt.excluded[name] for name in updated})


# One-row upserts by (dialect's INSERT, table, conflict rule, columns, restore): a few shapes
# per kind, since rows come from the mapping's fixed column sets.
_ONE_ROW: dict[tuple[Any, ...], Any] = {}


def _upsert_statement(insert: Any, table: Table, on_conflict: str, columns: tuple[str, ...], restore: bool) -> Any:
    key = (insert, table.name, on_conflict, columns, restore)
    stmt = _ONE_ROW.get(key)
    if stmt is None:
        stmt = _ONE_ROW[key] = _on_conflict(insert(table), table, on_conflict, columns, restore)
    return stmt


class MirrorWriter:
    """Applies events and snapshots to the mirror inside the caller's transaction."""

    def __init__(self, session: AsyncSession, *, metrics: Metrics | None = None) -> None:
        self.session = session
        self.metrics = metrics
        self._insert = insert_for(session)

    def _count(self, table: Table, source: str, rows: int = 1) -> None:
        if self.metrics is not None and rows:
            self.metrics.rows_upserted.labels(table.name, source).inc(rows)

    async def _upsert(
        self,
        kind: str,
        values: Sequence[Mapping[str, Any]],
        *,
        on_conflict: str,
        restore: bool = False,
    ) -> None:
        """``on_conflict``: "nothing" (keep the stored row), "content" (overwrite content, keep
        ``deleted_at`` unless ``restore``), or "tombstone" (set ``deleted_at`` only)."""
        if not values:
            return
        table = table_for(kind)
        if len(values) == 1:
            # One row (an event, a snapshot): a statement built once per shape, its row bound
            # as parameters, costs no construction and no cache-key walk per call.
            await self.session.execute(
                _upsert_statement(self._insert, table, on_conflict, tuple(values[0]), restore), dict(values[0])
            )
        else:
            await self.session.execute(_on_conflict(self._insert(table).values(list(values)), table, on_conflict,
                                                    tuple(values[0]), restore))
        self._count(table, str(values[0].get("written_by", "")), len(values))

    async def _stored_raw(self, kind: str, workspace_id: str, row_id: str) -> dict[str, Any] | None:
        table = table_for(kind)
        raw = (await self.session.execute(select(table.c.raw).where(*_key_filter(table, kind, workspace_id, row_id)))).scalar()
        return dict(raw) if isinstance(raw, Mapping) else None

    async def apply_event(
        self, workspace_id: str, spec: EventSpec, body: Body, *, written_by: str = "webhook", now: datetime | None = None
    ) -> str | None:
        """Apply one event body; returns the row id written, or None when the body has no id."""
        row_id = entity_id(spec.kind, body, spec.id_field)
        if row_id is None:
            return None
        now = now or utcnow()
        book = {"written_at": now, "written_by": written_by, "last_event": spec.name}
        action = spec.action
        if action not in (Action.CREATED, Action.DELETED):  # those two never change stored content
            stored = await self._stored_raw(spec.kind, workspace_id, row_id)
            body = {**(stored or {}), **body}
        if spec.name in _MEMBERSHIP_AFTER:
            body = with_membership_status(body, workspace_id, _MEMBERSHIP_AFTER[spec.name])
        values = {**row_values(spec.kind, workspace_id, row_id, body), **book}
        if action is Action.CREATED:
            await self._upsert(spec.kind, [values], on_conflict="nothing")
        elif action is Action.DELETED:
            await self._upsert(spec.kind, [{**values, "deleted_at": now}], on_conflict="tombstone")
        elif action is Action.RESTORED:
            await self._upsert(spec.kind, [{**values, "deleted_at": None}], on_conflict="content", restore=True)
        else:  # UPDATED, PARTIAL, SPLIT, NOTICE
            await self._upsert(spec.kind, [values], on_conflict="content")
        return row_id

    async def apply_snapshot(
        self,
        workspace_id: str,
        kind: str,
        row_id: str,
        body: Body | None,
        *,
        written_by: str = "refetch",
        event: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """The entity as Clockify serves it now (``body``), or gone (``None``)."""
        now = now or utcnow()
        book = {"written_at": now, "written_by": written_by, "last_event": event}
        if body is None:
            await self.mark_deleted(kind, workspace_id, [row_id], written_by=written_by, event=event, now=now)
            return
        values = {**row_values(kind, workspace_id, row_id, body), **book, "deleted_at": None}
        await self._upsert(kind, [values], on_conflict="content", restore=True)

    async def upsert_snapshots(
        self,
        kind: str,
        workspace_id: str,
        bodies: Iterable[Body],
        *,
        written_by: str,
        now: datetime | None = None,
    ) -> int:
        """Bulk form of :meth:`apply_snapshot` for pages pulled from the API."""
        now = now or utcnow()
        rows: dict[str, dict[str, Any]] = {}
        for body in bodies:
            row_id = entity_id(kind, body)
            if row_id is not None:  # the last copy of a duplicated id wins
                rows[row_id] = {
                    **row_values(kind, workspace_id, row_id, body),
                    "written_at": now,
                    "written_by": written_by,
                    "last_event": None,
                    "deleted_at": None,
                }
        await self._upsert(kind, list(rows.values()), on_conflict="content", restore=True)
        return len(rows)

    async def mark_deleted(
        self,
        kind: str,
        workspace_id: str,
        row_ids: Sequence[str],
        *,
        written_by: str,
        event: str | None = None,
        now: datetime | None = None,
    ) -> int:
        """Tombstone existing rows (rows never seen stay absent: there is no body to keep)."""
        if not row_ids:
            return 0
        table = table_for(kind)
        clauses = [table.c.workspace_id == workspace_id, table.c.id.in_(list(row_ids)), table.c.deleted_at.is_(None)]
        if "kind" in table.c:
            clauses.append(table.c.kind == kind)
        result = await self.session.execute(
            update(table)
            .where(*clauses)
            .values(deleted_at=now or utcnow(), written_at=now or utcnow(), written_by=written_by, last_event=event)
        )
        count = int(getattr(result, "rowcount", 0) or 0)
        self._count(table, written_by, count)
        return count

    async def purge_workspace(self, workspace_id: str) -> int:
        """Remove every mirrored row of a workspace (uninstall without retention)."""
        removed = 0
        tables = {table_for(kind) for kind in TYPED_MODELS} | {Entity.__table__}
        for table in tables:
            assert isinstance(table, Table)
            result = await self.session.execute(delete(table).where(table.c.workspace_id == workspace_id))
            removed += int(getattr(result, "rowcount", 0) or 0)
        return removed
