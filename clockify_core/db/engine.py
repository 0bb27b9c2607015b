"""Async engine and session factories. Nothing here connects until first use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from clockify_core.config import DatabaseConfig


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the single writer; busy_timeout makes writers queue
    # instead of failing when the worker and a request write at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _drop_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    # A stopped or restarted PostgreSQL (or a cut network path) closes the pooled sockets,
    # and asyncpg marks an idle connection closed as soon as the event loop sees that. So a
    # checkout checks that flag instead of pre-pinging, which costs three round trips on
    # asyncpg (BEGIN, an empty query, ROLLBACK) before every transaction. The pool replaces
    # a connection refused here; one that dies unseen fails its statement, and SQLAlchemy
    # then invalidates the whole pool, so the next checkouts connect afresh.
    if dbapi_connection.driver_connection.is_closed():
        raise exc.DisconnectionError("pooled connection closed by the server")


def create_engine(url: str, config: DatabaseConfig | None = None) -> AsyncEngine:
    """Build an engine for a ``sqlite+aiosqlite`` or ``postgresql+asyncpg`` URL."""
    config = config or DatabaseConfig()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=config.echo, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_async_engine(
        url,
        echo=config.echo,
        pool_size=config.pool_size,
        max_overflow=config.max_overflow,
        pool_timeout=config.pool_timeout,
        connect_args={"timeout": 5, "command_timeout": 60},
    )
    # A stopped and restarted PostgreSQL leaves dead pooled connections behind; they are
    # replaced at checkout, so the service recovers without a restart.
    event.listen(engine.sync_engine, "checkout", _drop_closed)
    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
