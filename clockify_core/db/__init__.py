"""Database kit: declarative base and column types, engine factory, migrations."""

from clockify_core.db.base import Base, JsonType, UtcDateTime, utcnow
from clockify_core.db.dialect import is_postgres
from clockify_core.db.engine import create_engine, create_session_factory

__all__ = ["Base", "JsonType", "UtcDateTime", "create_engine", "create_session_factory", "is_postgres", "utcnow"]
