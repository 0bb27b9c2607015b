"""Durable background jobs: bootstrap, sync, backfill, webhook registration..."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clockify_core.db.base import Base, BigIntPK, JsonType, UtcDateTime, utcnow


class JobKind(StrEnum):
    BOOTSTRAP = "bootstrap"
    SYNC = "sync"
    BACKFILL = "backfill"
    REGISTER_WEBHOOKS = "register_webhooks"
    UNREGISTER_WEBHOOKS = "unregister_webhooks"
    RECONCILE = "reconcile"  # re-pull a slice of time entries (after a split, for instance)


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index(None, "status", "run_after"),
        Index(None, "workspace_id", "created_at"),
        Index(None, "status", "finished_at"),  # retention's window
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    params: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    # Progress as shown in /api/status: endpoint, pages, rows, errors, eta_seconds...
    progress: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    # Where a resumable job continues after a crash (backfill: last committed window).
    cursor: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_after: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    locked_by: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
