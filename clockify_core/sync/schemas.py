"""How sync's jobs and per-kind state read over HTTP (the sync API, the status page, operators)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from clockify_core.sync.models import SyncState
from clockify_core.sync.state import unavailable_status


class JobRead(BaseModel):
    id: int
    kind: str
    status: str
    progress: dict[str, Any]
    error: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class SyncRead(BaseModel):
    kind: str
    watermark: datetime | None
    last_run_at: datetime | None
    last_success_at: datetime | None
    rows_total: int
    rows_last_run: int
    last_error: str | None
    parked_until: datetime | None
    parked_reason: str | None
    # Set when Clockify does not offer this data to the workspace (the status it answered,
    # e.g. 404); ``parked_until`` is then the next check, and nothing is wrong.
    unavailable_status: int | None = None

    @classmethod
    def of(cls, row: SyncState) -> SyncRead:
        read = cls.model_validate(row, from_attributes=True)
        read.unavailable_status = unavailable_status(row.parked_reason)
        return read
