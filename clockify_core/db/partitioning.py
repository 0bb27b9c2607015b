"""Hash-partition a mirror table by ``workspace_id`` on PostgreSQL (docs/scaling.md).

The first step past one PostgreSQL's comfort zone: ``time_entries`` (and the other big
mirror tables) split into ``partitions`` hash partitions of ``workspace_id``. Every key
and index of the mirror tables already leads with ``workspace_id``, so each query the
services make names one workspace and touches one partition, a bootstrap's COPY and
``INSERT ... ON CONFLICT`` land in one partition, and vacuum works per partition.

:func:`partition_by_workspace` converts an existing table in one transaction: it builds
the partitioned twin (same columns, defaults, primary key and indexes), moves the rows,
drops the old table and gives the twin the old table's name and the old constraint and
index names, so the schema matches the models and the migrations name for name (Alembic
sees no difference). It is an operator's step, not a migration: the default schema stays
the one ``docs/schema.md`` documents, and the services need no setting to use either. Views reading the table (``reporting.*``)
are recreated with their definitions and options; grants on them must be re-applied.
"""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from clockify_core.db.engine import create_engine

# The big mirror tables; their primary keys lead with workspace_id, as partitioning requires.
PARTITIONED_TABLES = ("time_entries", "entities")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
_COLUMNS = re.compile(r"USING \w+ \((.*)\)")


async def is_partitioned(conn: AsyncConnection, table: str) -> bool:
    kind = await conn.scalar(text("SELECT relkind::text FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table})
    return bool(kind == "p")


async def _indexes(conn: AsyncConnection, table: str) -> dict[str, str]:
    """Index definition (the part after ``USING``, e.g. ``btree (workspace_id, start_at)``) -> name."""
    rows = await conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t"), {"t": table})
    out: dict[str, str] = {}
    for name, definition in rows:
        match = _COLUMNS.search(definition)
        out[(match.group(0) if match else definition) + (" unique" if " UNIQUE " in definition else "")] = name
    return out


_DEPENDENT_VIEWS = """
WITH RECURSIVE deps(view, depth) AS (
    SELECT DISTINCT r.ev_class, 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
    WHERE d.refobjid = to_regclass(:t) AND r.ev_class <> to_regclass(:t)
    UNION
    SELECT DISTINCT r.ev_class, deps.depth + 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
    JOIN deps ON d.refobjid = deps.view WHERE r.ev_class <> deps.view
)
SELECT c.oid::regclass::text, pg_get_viewdef(c.oid), c.reloptions, max(depth)
FROM deps JOIN pg_class c ON c.oid = deps.view GROUP BY c.oid ORDER BY max(depth)
"""


async def _detach_views(conn: AsyncConnection, table: str) -> list[str]:
    """Drop the views that read ``table`` (directly or through other views); the statements recreating them."""
    views = (await conn.execute(text(_DEPENDENT_VIEWS), {"t": table})).all()
    recreate = []
    for name, definition, options, _ in views:
        with_ = f" WITH ({', '.join(options)})" if options else ""
        recreate.append(f"CREATE VIEW {name}{with_} AS {definition}")
    for name, *_ in reversed(views):
        await conn.execute(text(f"DROP VIEW IF EXISTS {name}"))
    return recreate


async def partition_by_workspace(conn: AsyncConnection, table: str = "time_entries", partitions: int = 16) -> bool:
    """Make ``table`` hash-partitioned by ``workspace_id`` into ``partitions`` parts; False if it already is.

    Runs inside the caller's transaction (``engine.begin()``): a failure leaves the table as it was.
    Takes an ACCESS EXCLUSIVE lock on the table while it copies: run it with the services stopped.
    """
    if not _IDENT.match(table) or not 1 <= partitions <= 1024:
        raise ValueError("table must be a plain identifier and partitions between 1 and 1024")
    if await is_partitioned(conn, table):
        return False
    twin = f"{table}_partitioned"
    pk = await conn.scalar(text(
        "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(:t) AND contype = 'p'"), {"t": table})
    keyed = await conn.scalar(text(
        "SELECT bool_or(a.attname = 'workspace_id') FROM pg_constraint c JOIN pg_attribute a "
        "ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) WHERE c.conrelid = to_regclass(:t) AND c.contype = 'p'"),
        {"t": table})
    if not keyed:
        raise ValueError(f"{table}'s primary key does not include workspace_id, so it cannot be partitioned by it")
    old_indexes = await _indexes(conn, table)
    await conn.execute(text(
        f"CREATE TABLE {twin} (LIKE {table} INCLUDING ALL) PARTITION BY HASH (workspace_id)"))
    for remainder in range(partitions):
        await conn.execute(text(
            f"CREATE TABLE {table}_p{remainder} PARTITION OF {twin} "
            f"FOR VALUES WITH (MODULUS {partitions}, REMAINDER {remainder})"))
    await conn.execute(text(f"INSERT INTO {twin} SELECT * FROM {table}"))  # noqa: S608 - identifiers checked above
    views = await _detach_views(conn, table)
    await conn.execute(text(f"DROP TABLE {table}"))
    await conn.execute(text(f"ALTER TABLE {twin} RENAME TO {table}"))
    new_pk = await conn.scalar(text(
        "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(:t) AND contype = 'p'"), {"t": table})
    if pk and new_pk and new_pk != pk:
        await conn.execute(text(f'ALTER TABLE {table} RENAME CONSTRAINT "{new_pk}" TO "{pk}"'))
    for definition, name in (await _indexes(conn, table)).items():
        wanted = old_indexes.get(definition)
        if wanted and wanted != name:
            await conn.execute(text(f'ALTER INDEX "{name}" RENAME TO "{wanted}"'))
    for statement in views:  # views bind to a table's identity, not its name: recreated on the new one
        await conn.execute(text(statement))
    return True


async def partition_database(url: str, partitions: int = 16, tables: tuple[str, ...] = PARTITIONED_TABLES) -> list[str]:
    """Partition ``tables`` of the database at ``url`` (one transaction); the tables it converted."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            return [table for table in tables if await partition_by_workspace(conn, table, partitions)]
    finally:
        await engine.dispose()
