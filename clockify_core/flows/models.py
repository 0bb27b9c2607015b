"""No-code flows, the record of every run, and the loop guard's memory (docs/flows.md)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clockify_core.db.base import Base, BigIntPK, JsonType, UtcDateTime, utcnow


class RunStatus(StrEnum):
    QUEUED = "QUEUED"  # matched; waiting for the executor (or for a retry)
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    STOPPED = "STOPPED"  # a `stop` action ended it; counts as a success
    FAILED = "FAILED"  # an action failed every attempt
    SKIPPED = "SKIPPED"  # the flow (or the workspace's flows) was switched off before it ran
    RATE_LIMITED = "RATE_LIMITED"  # over max_runs_per_minute; not executed
    LOOP_BLOCKED = "LOOP_BLOCKED"  # the flow's own change came back too often in a row
    NOT_MATCHED = "NOT_MATCHED"  # only recorded for flows with record_unmatched
    CONDITION_ERROR = "CONDITION_ERROR"  # a condition could not be evaluated (regex timeout, evaluation budget)


FINISHED = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.STOPPED, RunStatus.FAILED, RunStatus.SKIPPED, RunStatus.RATE_LIMITED,
     RunStatus.LOOP_BLOCKED, RunStatus.NOT_MATCHED, RunStatus.CONDITION_ERROR}
)
# Runs that count against max_runs_per_minute: the ones admitted for execution.
ADMITTED = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.STOPPED, RunStatus.FAILED)


class Flow(Base):
    __tablename__ = "flows"
    __table_args__ = (Index(None, "workspace_id", "enabled"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # {"events": [...]} or {"custom_source": "<id>", "events": [...]}; see docs/flows.md.
    trigger: Mapped[dict[str, Any]] = mapped_column(JsonType)
    conditions: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    # Ordered actions; secret header values are stored encrypted inside.
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    max_runs_per_minute: Mapped[int] = mapped_column(Integer, default=60)
    record_unmatched: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped by every change of the definition; workers recompile a cached flow when it moves.
    version: Mapped[int] = mapped_column(Integer, default=1)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # Approximate: workers add their in-memory counts every few seconds.
    evaluated_count: Mapped[int] = mapped_column(BigInteger, default=0)
    matched_count: Mapped[int] = mapped_column(BigInteger, default=0)
    last_matched_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class FlowRun(Base):
    __tablename__ = "flow_runs"
    __table_args__ = (
        Index(None, "flow_id", "created_at"),
        Index(None, "workspace_id", "created_at"),
        Index(None, "status", "next_attempt_at"),
        Index(None, "started_at"),  # retention's window
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    flow_id: Mapped[str] = mapped_column(String(36), ForeignKey("flows.id", ondelete="CASCADE"))
    workspace_id: Mapped[str] = mapped_column(String(64))
    inbox_event_id: Mapped[int | None] = mapped_column(BigInteger)
    event_type: Mapped[str | None] = mapped_column(String(64))
    # The id of the entity the event is about; the loop guard keys on it.
    entity_id: Mapped[str | None] = mapped_column(String(200))
    matched: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))
    # How many times in a row this flow's own change to the entity triggered it.
    chain_depth: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    locked_by: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # What the run acts on: {"source", "source_ref", "received_at", "body"} of the event.
    trigger: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    # Where a retried run resumes: {"next": action index, "vars": {...}, "attempts": {index: n}}.
    state: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    # Per-action status with request/response summaries, secrets redacted.
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class FlowLoopMark(Base):
    """An entity a flow wrote recently: its next event inherits ``depth`` (the loop guard)."""

    __tablename__ = "flow_loop_marks"
    __table_args__ = (Index(None, "expires_at"),)

    flow_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("flows.id", ondelete="CASCADE"), primary_key=True
    )
    entity_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64))
    depth: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
