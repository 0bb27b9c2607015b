"""Indexes for the retention windows' predicates

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22

Each index has the shape of one retention query (clockify_core/retention/service.py),
so a pass finds its next batch without scanning the table: applied and dead inbox
events by age (partial indexes, so ingesting a PENDING event maintains neither), the
API call log by age, finished flow runs by start, and finished jobs by status and end.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PARTIAL: tuple[tuple[str, str, str], ...] = (
    ("ix_inbox_events_done_processed_at", "processed_at", "status = 'DONE'"),
    ("ix_inbox_events_dead_received_at", "received_at", "status = 'DEAD'"),
)
_INDEXES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("api_calls", ("created_at",)),
    ("flow_runs", ("started_at",)),
    ("jobs", ("status", "finished_at")),
)


def _name(table: str, columns: tuple[str, ...]) -> str:
    return f"ix_{table}_{'_'.join(columns)}"


def upgrade() -> None:
    for name, column, where in _PARTIAL:
        op.create_index(name, "inbox_events", [column], postgresql_where=sa.text(where), sqlite_where=sa.text(where))
    for table, columns in _INDEXES:
        op.create_index(op.f(_name(table, columns)), table, list(columns), unique=False)


def downgrade() -> None:
    for table, columns in reversed(_INDEXES):
        op.drop_index(op.f(_name(table, columns)), table_name=table)
    for name, _column, _where in reversed(_PARTIAL):
        op.drop_index(name, table_name="inbox_events")
