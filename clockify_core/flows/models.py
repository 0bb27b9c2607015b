"""No-code flows and the record of every run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clockify_core.db.base import BigIntPK, Base, JsonType, UtcDateTime, utcnow


class Flow(Base):
    __tablename__ = "flows"
    __table_args__ = (Index(None, "workspace_id", "enabled"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # {"events": [...]} or {"custom_source": "<id>"}
    trigger: Mapped[dict[str, Any]] = mapped_column(JsonType)
    conditions: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    # Ordered actions; secret header values are stored encrypted inside.
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    max_runs_per_minute: Mapped[int] = mapped_column(Integer, default=60)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class FlowRun(Base):
    __tablename__ = "flow_runs"
    __table_args__ = (Index(None, "flow_id", "started_at"), Index(None, "workspace_id", "started_at"))

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    flow_id: Mapped[str] = mapped_column(String(36), ForeignKey("flows.id", ondelete="CASCADE"))
    workspace_id: Mapped[str] = mapped_column(String(64))
    inbox_event_id: Mapped[int | None] = mapped_column(BigInteger)
    event_type: Mapped[str | None] = mapped_column(String(64))
    matched: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    # Per-action status with request/response summaries, secrets redacted.
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
