"""What differs between the two databases the kit runs on, asked in one way.

The kit runs on PostgreSQL in production and on SQLite for a single process. Code that
needs a dialect's own SQL (``ON CONFLICT``, row locks, COPY, advisory locks) asks here,
with whatever it holds: a session, a connection, an engine, a dialect or a URL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

Bindable = AsyncSession | AsyncConnection | AsyncEngine | Dialect | str
InsertOnConflict = Callable[[Any], postgresql.Insert | sqlite.Insert]
_Select = TypeVar("_Select", bound=Select[Any])


def dialect_name(db: Bindable) -> str:
    """``"postgresql"`` or ``"sqlite"``; a session without a bind raises (it could not run SQL either)."""
    if isinstance(db, str):
        return make_url(db).get_backend_name()
    if isinstance(db, AsyncSession):
        return db.get_bind().dialect.name
    if isinstance(db, Dialect):
        return db.name
    return db.dialect.name


def is_postgres(db: Bindable) -> bool:
    return dialect_name(db) == "postgresql"


def is_sqlite(db: Bindable) -> bool:
    return dialect_name(db) == "sqlite"


def insert_for(db: Bindable) -> InsertOnConflict:
    """The dialect's INSERT constructor: both have ``on_conflict_do_nothing``/``_do_update``."""
    return postgresql.insert if is_postgres(db) else sqlite.insert


def skip_locked(db: Bindable, query: _Select, *, of: Any) -> _Select:
    """``query`` locking the rows of ``of`` it picks and skipping rows another claim holds.

    PostgreSQL only: SQLite has one writer at a time, so its claims are serialised anyway
    (a claim's UPDATE re-checks that the rows are still due where it selected first).
    """
    return query.with_for_update(skip_locked=True, of=of) if is_postgres(db) else query
