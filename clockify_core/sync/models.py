"""Pull-side state: jobs (bootstrap, sync, backfill), per-kind watermarks, leader leases."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clockify_core.db.base import BigIntPK, Base, JsonType, UtcDateTime, utcnow


class JobKind(StrEnum):
    BOOTSTRAP = "bootstrap"
    SYNC = "sync"
    BACKFILL = "backfill"


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index(None, "status", "run_after"), Index(None, "workspace_id", "created_at"))

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
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


class SyncState(Base):
    __tablename__ = "sync_state"

    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), primary_key=True)
    watermark: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_run_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    rows_total: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_last_run: Mapped[int] = mapped_column(BigInteger, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    parked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    parked_reason: Mapped[str | None] = mapped_column(Text)


class SchedulerLease(Base):
    """Single-leader election that works on SQLite and PostgreSQL alike."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_tick_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
