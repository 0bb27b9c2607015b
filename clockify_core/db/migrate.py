"""Apply and inspect the one Alembic history on an async engine.

Several processes may start at once (gunicorn workers, replicas); the upgrade runs
under a lock (a PostgreSQL advisory lock, a file lock for SQLite) so only one of
them migrates and the others find the schema at head.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from alembic import command
from clockify_core.db.dialect import is_postgres
from clockify_core.errors import ConfigurationError

# Any constant works; it only has to be the same in every process of the platform.
_ADVISORY_LOCK_ID = 0x0C10C1F7


def script_location() -> Path:
    """The ``alembic/`` folder: inside the wheel, or at the root of a source checkout."""
    override = os.environ.get("CLOCKIFY_MIGRATIONS_DIR")
    here = Path(__file__).resolve().parent
    candidates = [Path(override)] if override else []
    candidates += [here / "migrations", here.parents[1] / "alembic"]
    for candidate in candidates:
        if (candidate / "env.py").is_file():
            return candidate
    raise ConfigurationError("Alembic scripts not found; set CLOCKIFY_MIGRATIONS_DIR")


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location()))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@lru_cache(maxsize=1)
def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise ConfigurationError(f"The migration history must have one head, found {heads}")
    return heads[0]


def _current(sync_conn: Connection) -> str | None:
    return MigrationContext.configure(sync_conn).get_current_revision()


async def current_revision(conn: AsyncConnection) -> str | None:
    return await conn.run_sync(_current)


async def stored_revision(conn: AsyncConnection) -> str | None:
    """The revision in ``alembic_version``, read with one plain query (cheap enough for probes)."""
    try:
        result = await conn.execute(text("SELECT version_num FROM alembic_version"))
    except DBAPIError:
        # No version table yet: nothing migrated. Roll back so the connection stays usable.
        await conn.rollback()
        return None
    return result.scalar_one_or_none()


@contextmanager
def _file_lock(engine: AsyncEngine) -> Iterator[None]:
    database = make_url(str(engine.url)).database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database + ".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(sync_conn: Connection, direction: str, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = sync_conn
    if direction == "upgrade":
        command.upgrade(cfg, revision)
    else:
        command.downgrade(cfg, revision)


async def _migrate(engine: AsyncEngine, direction: str, revision: str) -> None:
    if is_postgres(engine):
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
            await conn.run_sync(_run, direction, revision)
        return
    with _file_lock(engine):
        async with engine.begin() as conn:
            await conn.run_sync(_run, direction, revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    await _migrate(engine, "upgrade", revision)


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    await _migrate(engine, "downgrade", revision)


async def is_at_head(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        return await current_revision(conn) == head_revision()
