"""Per-workspace count limits (flows, custom webhook sources), held under concurrency.

Counting the rows and then inserting one is a race: concurrent creates all count the same
number and all insert. :func:`reserve_slot` first serialises the creates of one workspace
inside the database, then counts, so the count a create sees cannot change before its
transaction ends:

* PostgreSQL locks the workspace's installation row (``SELECT ... FOR NO KEY UPDATE``) until
  commit or rollback; other workspaces' creates are not held up, and neither are inserts of
  rows that reference the installation (they take only a key-share lock).
* SQLite has one writer: a no-op write as the transaction's first statement takes the write
  lock (``BEGIN IMMEDIATE`` in effect) and queues behind any other writer (``busy_timeout``),
  and the count then reads the newest committed state.

A create that finds the limit reached answers 409, never 500.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core.db.dialect import is_postgres
from clockify_core.errors import Conflict, NotFound
from clockify_core.installations.models import Installation


async def lock_workspace(session: AsyncSession, workspace_id: str) -> None:
    """Hold the workspace's creation lock until the session's transaction ends."""
    if is_postgres(session):
        found = await session.scalar(
            select(Installation.workspace_id)
            .where(Installation.workspace_id == workspace_id)
            .with_for_update(key_share=True)
        )
    else:
        # Plain SQL: the ORM would also bump the row's ``updated_at`` (its onupdate).
        result = await session.execute(
            text("UPDATE installations SET workspace_id = workspace_id WHERE workspace_id = :workspace_id"),
            {"workspace_id": workspace_id},
        )
        found = workspace_id if result.rowcount else None  # type: ignore[attr-defined]
    if found is None:
        raise NotFound("The add-on is not installed on this workspace")


async def reserve_slot(session: AsyncSession, model: Any, workspace_id: str, limit: int, what: str) -> None:
    """Raise 409 when the workspace already has ``limit`` rows of ``model``; otherwise the
    caller may insert one before its transaction ends, and no concurrent create takes the
    same slot. ``what`` names the rows and the setting in the error."""
    await lock_workspace(session, workspace_id)
    count = await session.scalar(select(func.count()).select_from(model).where(model.workspace_id == workspace_id))
    if int(count or 0) >= limit:
        raise Conflict(f"This workspace already has {limit} {what}")
