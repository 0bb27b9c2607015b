"""What a workspace's data is, and deleting it: the one rule both purges follow.

An uninstall with ``LIFECYCLE__RETENTION_DAYS=0`` deletes the data at once, in the lifecycle
call's transaction (:func:`purge_workspace`); with a retention period, retention deletes it
once ``purge_after`` has passed, in small batches table by table (:func:`workspace_tables`).
Both remove exactly the same rows, so a workspace leaves the same trace whichever path ran.

A workspace's data is every row of it in a table with a ``workspace_id`` column. A table
whose rows outlive the purge (the installation record: who was installed, the revoked
tokens, ``purge_after``) says so where it is declared, ``info={KEEP_ON_PURGE: True}``, so
no purge path keeps a list of its own. Tables are those of ``Base.metadata``: every model
the process imported (an app imports them all).
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import Table, delete
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core.db.base import Base

KEEP_ON_PURGE: Final = "keep_on_purge"


def workspace_tables() -> list[Table]:
    """The tables that hold a workspace's data, children before parents (foreign keys never refuse)."""
    return [
        table for table in reversed(Base.metadata.sorted_tables)
        if "workspace_id" in table.c and not table.info.get(KEEP_ON_PURGE)
    ]


async def purge_workspace(session: AsyncSession, workspace_id: str) -> int:
    """Delete all of the workspace's data in the caller's transaction; the number of rows removed."""
    removed = 0
    for table in workspace_tables():
        result = await session.execute(delete(table).where(table.c.workspace_id == workspace_id))
        removed += int(getattr(result, "rowcount", 0) or 0)
    return removed
