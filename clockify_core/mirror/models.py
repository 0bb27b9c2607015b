"""The live mirror of a workspace: typed tables people query, plus `entities`.

Every mirrored row keeps the raw Clockify body, a soft-delete timestamp and how it
was last written (`written_by`: webhook, refetch, bootstrap, sync, backfill).
Column meanings are documented in docs/schema.md; treat them as a public API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clockify_core.db.base import Base, JsonType, UtcDateTime, utcnow


class MirroredRow:
    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    raw: Mapped[dict[str, Any]] = mapped_column(JsonType)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    written_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    written_by: Mapped[str] = mapped_column(String(16))
    last_event: Mapped[str | None] = mapped_column(String(64))


class TimeEntry(MirroredRow, Base):
    __tablename__ = "time_entries"
    __table_args__ = (
        Index(None, "workspace_id", "start_at"),
        Index(None, "workspace_id", "user_id", "start_at"),
        Index(None, "workspace_id", "project_id"),
    )

    user_id: Mapped[str | None] = mapped_column(String(64))
    project_id: Mapped[str | None] = mapped_column(String(64))
    task_id: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    start_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    end_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    billable: Mapped[bool | None] = mapped_column(Boolean)
    is_locked: Mapped[bool | None] = mapped_column(Boolean)
    type: Mapped[str | None] = mapped_column(String(16))
    tag_ids: Mapped[list[str]] = mapped_column(JsonType, default=list)
    hourly_rate: Mapped[int | None] = mapped_column(BigInteger)
    cost_rate: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(8))
    custom_fields: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)


class Project(MirroredRow, Base):
    __tablename__ = "projects"

    name: Mapped[str | None] = mapped_column(Text)
    client_id: Mapped[str | None] = mapped_column(String(64))
    billable: Mapped[bool | None] = mapped_column(Boolean)
    archived: Mapped[bool | None] = mapped_column(Boolean)
    is_public: Mapped[bool | None] = mapped_column(Boolean)
    color: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    hourly_rate: Mapped[int | None] = mapped_column(BigInteger)
    cost_rate: Mapped[int | None] = mapped_column(BigInteger)
    estimate_seconds: Mapped[int | None] = mapped_column(BigInteger)


class Client(MirroredRow, Base):
    __tablename__ = "clients"

    name: Mapped[str | None] = mapped_column(Text)
    archived: Mapped[bool | None] = mapped_column(Boolean)
    email: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)


class Tag(MirroredRow, Base):
    __tablename__ = "tags"

    name: Mapped[str | None] = mapped_column(Text)
    archived: Mapped[bool | None] = mapped_column(Boolean)


class Task(MirroredRow, Base):
    __tablename__ = "tasks"
    __table_args__ = (Index(None, "workspace_id", "project_id"),)

    project_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(String(16))
    assignee_ids: Mapped[list[str]] = mapped_column(JsonType, default=list)
    billable: Mapped[bool | None] = mapped_column(Boolean)
    hourly_rate: Mapped[int | None] = mapped_column(BigInteger)
    cost_rate: Mapped[int | None] = mapped_column(BigInteger)
    estimate_seconds: Mapped[int | None] = mapped_column(BigInteger)


class User(MirroredRow, Base):
    __tablename__ = "users"

    name: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(String(32))
    time_zone: Mapped[str | None] = mapped_column(String(64))


class Entity(Base):
    """Every other kind: expenses, invoices, time off, approvals, assignments, groups, rates..."""

    __tablename__ = "entities"
    __table_args__ = (Index(None, "workspace_id", "kind", "written_at"),)

    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    raw: Mapped[dict[str, Any]] = mapped_column(JsonType)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    written_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    written_by: Mapped[str] = mapped_column(String(16))
    last_event: Mapped[str | None] = mapped_column(String(64))


TYPED_MODELS: dict[str, type[MirroredRow]] = {
    "time_entry": TimeEntry,
    "project": Project,
    "client": Client,
    "tag": Tag,
    "task": Task,
    "user": User,
}
