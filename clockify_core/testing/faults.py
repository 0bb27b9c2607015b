"""Database faults for one workspace: the database itself refuses a write, on PostgreSQL or SQLite.

A trigger raises for every row of ``table`` that belongs to ``workspace_id``, as a broken
row, a constraint an old version left behind or a corrupt page would: the code under test
runs unchanged and meets a real database error for that workspace only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from clockify_core.db.dialect import is_postgres

Operation = Literal["INSERT", "UPDATE", "DELETE"]


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@asynccontextmanager
async def refused_for_workspace(
    engine: AsyncEngine, table: str, workspace_id: str, operation: Operation
) -> AsyncIterator[None]:
    """While the block runs, ``operation`` on ``table`` fails for ``workspace_id``'s rows."""
    name = f"test_refuse_{table}_{operation.lower()}"
    row = "OLD" if operation == "DELETE" else "NEW"
    workspace = _quoted(workspace_id)
    message = _quoted(f"refused for workspace {workspace_id} by the test")
    async with engine.begin() as conn:
        if is_postgres(engine):
            await conn.execute(text(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF {row}.workspace_id = {workspace} THEN RAISE EXCEPTION {message}; END IF; "
                f"RETURN {row}; END $$"
            ))
            await conn.execute(text(
                f"CREATE TRIGGER {name} BEFORE {operation} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()"
            ))
        else:
            await conn.execute(text(
                f"CREATE TRIGGER {name} BEFORE {operation} ON {table} WHEN {row}.workspace_id = {workspace} "
                f"BEGIN SELECT RAISE(ABORT, {message}); END"
            ))
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP TRIGGER {name}" + (f" ON {table}" if is_postgres(engine) else "")))
            if is_postgres(engine):
                await conn.execute(text(f"DROP FUNCTION {name}()"))
