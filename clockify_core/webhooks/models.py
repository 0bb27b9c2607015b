"""The durable inbox and the custom (non-Clockify) webhook sources."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from clockify_core.db.base import Base, BigIntPK, JsonType, UtcDateTime, utcnow


class InboxStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    DONE = "DONE"
    DEAD = "DEAD"


class EventSource(StrEnum):
    CLOCKIFY = "clockify"
    CUSTOM = "custom"


_UNFINISHED = text("status IN ('PENDING', 'PROCESSING')")
_DONE = text("status = 'DONE'")
_DEAD = text("status = 'DEAD'")


class InboxEvent(Base):
    __tablename__ = "inbox_events"
    __table_args__ = (
        # A claim reads the unfinished events in id order and stops at its batch size, however
        # long the backlog (migration 0011).
        Index("ix_inbox_events_unfinished_id", "id", postgresql_where=_UNFINISHED, sqlite_where=_UNFINISHED),
        Index(None, "workspace_id", "received_at"),
        # Workers apply the events of one entity in arrival order; this finds earlier ones.
        Index(None, "workspace_id", "entity_key", "id"),
        # Retention's windows: applied events by age, dead letters by age. Partial, so
        # ingest (rows arrive PENDING) pays nothing for them.
        Index("ix_inbox_events_done_processed_at", "processed_at", postgresql_where=_DONE, sqlite_where=_DONE),
        Index("ix_inbox_events_dead_received_at", "received_at", postgresql_where=_DEAD, sqlite_where=_DEAD),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16), default=EventSource.CLOCKIFY)
    # For custom events: the custom_webhook_sources.id they arrived through.
    source_ref: Mapped[str | None] = mapped_column(String(64))
    # sha256 of (entity, event type, body hash, the entity's latest event id at insert), or
    # of the sender's own delivery id (custom webhooks' webhook-id); see webhooks/inbox.py.
    dedup_key: Mapped[str] = mapped_column(String(64), unique=True)
    entity_key: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=InboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    deliveries: Mapped[int] = mapped_column(Integer, default=1)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    locked_by: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class CustomWebhookSource(Base):
    __tablename__ = "custom_webhook_sources"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # Encrypted JSON list of the active Standard Webhooks secrets (whsec_...), newest last;
    # the previous one stays valid so senders can switch without downtime.
    secrets_encrypted: Mapped[str] = mapped_column(Text)
    tolerance_seconds: Mapped[int] = mapped_column(Integer, default=300)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
