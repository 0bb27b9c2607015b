"""Create and drop throwaway PostgreSQL databases and SQLite files for tests."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from clockify_core.db import create_engine
from clockify_core.db.migrate import upgrade

DEFAULT_TEST_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/0"

# The suite's PostgreSQL connection budget (README.md, "Tests and PostgreSQL connections").
# Every app a test starts, in-process (clockify_core/testing/addon.py) or as a subprocess
# (clockify_core/testing/processes.py), gets this pool: at most 10 connections instead of the
# production default of 20. The busiest test file starts three service processes at once, so
# one pytest worker holds at most about 30; the session start checks the server has that many
# free per worker (TEST_DB_CONNECTIONS_PER_WORKER overrides the figure).
TEST_POOL_SIZE = 5
TEST_MAX_OVERFLOW = 5
CONNECTIONS_PER_WORKER = 30


def test_database_url() -> str:
    return os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)


def test_redis_url() -> str:
    return os.environ.get("TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)


def _asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def postgres_reachable(url: str) -> str | None:
    """None when the server answers, else the reason it does not."""
    try:
        conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


def connections_per_worker() -> int:
    return int(os.environ.get("TEST_DB_CONNECTIONS_PER_WORKER", CONNECTIONS_PER_WORKER))


async def connection_shortage(url: str, workers: int) -> str | None:
    """None when the server at ``url`` has the free connections ``workers`` pytest workers need,
    else one line saying how many it has and what to do; None too when the server is away (the
    fixtures report that)."""
    try:
        conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return None
    try:
        row = await conn.fetchrow(
            "SELECT current_setting('max_connections')::int AS max,"
            " current_setting('superuser_reserved_connections')::int"
            " + coalesce(nullif(current_setting('reserved_connections', true), ''), '0')::int AS reserved,"
            " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') - 1 AS used"
        )
    finally:
        await conn.close()
    assert row is not None
    free = row["max"] - row["reserved"] - row["used"]
    per_worker = connections_per_worker()
    need = per_worker * workers
    if free >= need:
        return None
    where = make_url(url).render_as_string(hide_password=True)
    return (
        f"PostgreSQL at {where} has {free} free connections (max_connections={row['max']}, "
        f"{row['reserved']} reserved, {row['used']} in use by others); this run needs {need} "
        f"({per_worker} per pytest worker x {workers}): run fewer workers (-n 1, or PYTEST_WORKERS=1 "
        "./scripts/test), free connections, or raise max_connections"
    )


async def create_database(server_url: str, name: str | None = None, *, template: str | None = None) -> str:
    """Create a database on the server of ``server_url``; returns its URL."""
    name = name or f"cat_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(_asyncpg_dsn(server_url), timeout=10)
    try:
        clause = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await conn.close()
    return with_database(server_url, name)


async def drop_database(url: str) -> None:
    name = make_url(url).database
    conn = await asyncpg.connect(_asyncpg_dsn(url, "postgres"), timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def create_migrated_database(server_url: str, name: str | None = None) -> str:
    url = await create_database(server_url, name)
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    return url


async def create_migrated_sqlite(path: Path) -> str:
    url = f"sqlite+aiosqlite:///{path.as_posix()}"
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    return url
