"""The inbox claim reads unfinished events in id order

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

A claim takes the oldest due events (``ORDER BY id LIMIT n``). Through
``(status, next_attempt_at)`` PostgreSQL fetched every due event, checked each for an
unfinished earlier event of its entity and sorted them all before taking ``n``: its cost
grew with the backlog (20-100 ms a claim at a few thousand pending events,
docs/benchmarks.md). A partial index of the ids of PENDING and PROCESSING events is read
in id order and the scan stops after ``n``. It replaces ``(status, next_attempt_at)``,
which nothing else reads, so ingest maintains as many indexes per event as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNFINISHED = "status IN ('PENDING', 'PROCESSING')"


def upgrade() -> None:
    op.drop_index("ix_inbox_events_status_next_attempt_at", table_name="inbox_events")
    op.create_index("ix_inbox_events_unfinished_id", "inbox_events", ["id"],
                    postgresql_where=sa.text(_UNFINISHED), sqlite_where=sa.text(_UNFINISHED))


def downgrade() -> None:
    op.drop_index("ix_inbox_events_unfinished_id", table_name="inbox_events")
    op.create_index("ix_inbox_events_status_next_attempt_at", "inbox_events", ["status", "next_attempt_at"])
