"""No-code flows, their runs and the loop guard's marks

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Migrations keep their own copies of column types so later model changes cannot rewrite history.
UtcDateTime = sa.DateTime(timezone=True)
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "flows",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("trigger", Json, nullable=False),
        sa.Column("conditions", Json, nullable=True),
        sa.Column("actions", Json, nullable=False),
        sa.Column("max_runs_per_minute", sa.Integer(), nullable=False),
        sa.Column("record_unmatched", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("evaluated_count", sa.BigInteger(), nullable=False),
        sa.Column("matched_count", sa.BigInteger(), nullable=False),
        sa.Column("last_matched_at", UtcDateTime, nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flows")),
    )
    with op.batch_alter_table("flows", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_flows_workspace_id_enabled"), ["workspace_id", "enabled"], unique=False
        )

    op.create_table(
        "flow_runs",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("flow_id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("inbox_event_id", sa.BigInteger(), nullable=True),
        sa.Column("event_type", sa.String(length=64), nullable=True),
        sa.Column("entity_id", sa.String(length=200), nullable=True),
        sa.Column("matched", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("chain_depth", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=True),
        sa.Column("locked_by", sa.String(length=64), nullable=True),
        sa.Column("locked_until", UtcDateTime, nullable=True),
        sa.Column("trigger", Json, nullable=True),
        sa.Column("state", Json, nullable=True),
        sa.Column("actions", Json, nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=True),
        sa.Column("finished_at", UtcDateTime, nullable=True),
        sa.ForeignKeyConstraint(
            ["flow_id"], ["flows.id"], name=op.f("fk_flow_runs_flow_id_flows"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_runs")),
    )
    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_flow_runs_flow_id_created_at"), ["flow_id", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_flow_runs_workspace_id_created_at"),
            ["workspace_id", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_flow_runs_status_next_attempt_at"),
            ["status", "next_attempt_at"],
            unique=False,
        )

    op.create_table(
        "flow_loop_marks",
        sa.Column("flow_id", sa.String(length=36), nullable=False),
        sa.Column("entity_id", sa.String(length=200), nullable=False),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_id"], ["flows.id"], name=op.f("fk_flow_loop_marks_flow_id_flows"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("flow_id", "entity_id", name=op.f("pk_flow_loop_marks")),
    )
    with op.batch_alter_table("flow_loop_marks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flow_loop_marks_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("flow_loop_marks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flow_loop_marks_expires_at"))
    op.drop_table("flow_loop_marks")

    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flow_runs_status_next_attempt_at"))
        batch_op.drop_index(batch_op.f("ix_flow_runs_workspace_id_created_at"))
        batch_op.drop_index(batch_op.f("ix_flow_runs_flow_id_created_at"))
    op.drop_table("flow_runs")

    with op.batch_alter_table("flows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flows_workspace_id_enabled"))
    op.drop_table("flows")
