"""Pull-side state: per-kind watermarks, the workspace's schedule and parking."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clockify_core.db.base import Base, UtcDateTime

# The `sync_state` row that stands for the workspace itself rather than one entity kind.
WORKSPACE_KIND = "*"


class SyncState(Base):
    """One row per workspace and mirror kind (``time_entry``, ``project``, ``expense``...).

    The row of kind ``*`` holds the workspace's schedule (``next_run_at``) and the
    failures and parking of its sync jobs; per-kind rows hold watermarks and counts.
    """

    __tablename__ = "sync_state"

    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), primary_key=True)
    watermark: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_run_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_run_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    rows_total: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_last_run: Mapped[int] = mapped_column(BigInteger, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    parked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    parked_reason: Mapped[str | None] = mapped_column(Text)
