"""The live mirror: typed tables and the generic entities table

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Migrations keep their own copies of column types so later model changes cannot rewrite history.
UtcDateTime = sa.DateTime(timezone=True)
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "time_entries",
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("project_id", sa.String(length=64), nullable=True),
        sa.Column("task_id", sa.String(length=64), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("start_at", UtcDateTime, nullable=True),
        sa.Column("end_at", UtcDateTime, nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("billable", sa.Boolean(), nullable=True),
        sa.Column("is_locked", sa.Boolean(), nullable=True),
        sa.Column("type", sa.String(length=16), nullable=True),
        sa.Column("tag_ids", Json, nullable=False),
        sa.Column("hourly_rate", sa.BigInteger(), nullable=True),
        sa.Column("cost_rate", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=8), nullable=True),
        sa.Column("custom_fields", Json, nullable=False),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("raw", Json, nullable=False),
        sa.Column("deleted_at", UtcDateTime, nullable=True),
        sa.Column("written_at", UtcDateTime, nullable=False),
        sa.Column("written_by", sa.String(length=16), nullable=False),
        sa.Column("last_event", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "id", name=op.f("pk_time_entries")),
    )
    with op.batch_alter_table("time_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_time_entries_workspace_id_project_id"),
            ["workspace_id", "project_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_time_entries_workspace_id_start_at"),
            ["workspace_id", "start_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_time_entries_workspace_id_user_id_start_at"),
            ["workspace_id", "user_id", "start_at"],
            unique=False,
        )

    op.create_table(
        "projects",
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("client_id", sa.String(length=64), nullable=True),
        sa.Column("billable", sa.Boolean(), nullable=True),
        sa.Column("archived", sa.Boolean(), nullable=True),
        sa.Column("is_public", sa.Boolean(), nullable=True),
        sa.Column("color", sa.String(length=16), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("hourly_rate", sa.BigInteger(), nullable=True),
        sa.Column("cost_rate", sa.BigInteger(), nullable=True),
        sa.Column("estimate_seconds", sa.BigInteger(), nullable=True),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("raw", Json, nullable=False),
        sa.Column("deleted_at", UtcDateTime, nullable=True),
        sa.Column("written_at", UtcDateTime, nullable=False),
        sa.Column("written_by", sa.String(length=16), nullable=False),
        sa.Column("last_event", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "id", name=op.f("pk_projects")),
    )

    op.create_table(
        "clients",
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("archived", sa.Boolean(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("raw", Json, nullable=False),
        sa.Column("deleted_at", UtcDateTime, nullable=True),
        sa.Column("written_at", UtcDateTime, nullable=False),
        sa.Column("written_by", sa.String(length=16), nullable=False),
        sa.Column("last_event", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "id", name=op.f("pk_clients")),
    )

    op.create_table(
        "tags",
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("archived", sa.Boolean(), nullable=True),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("raw", Json, nullable=False),
        sa.Column("deleted_at", UtcDateTime, nullable=True),
        sa.Column("written_at", UtcDateTime, nullable=False),
        sa.Column("written_by", sa.String(length=16), nullable=False),
        sa.Column("last_event", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "id", name=op.f("pk_tags")),
    )

    op.create_table(
        "tasks",
        sa.Column("project_id", sa.String(length=64), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("assignee_ids", Json, nullable=False),
        sa.Column("billable", sa.Boolean(), nullable=True),
        sa.Column("hourly_rate", sa.BigInteger(), nullable=True),
        sa.Column("cost_rate", sa.BigInteger(), nullable=True),
        sa.Column("estimate_seconds", sa.BigInteger(), nullable=True),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("raw", Json, nullable=False),
        sa.Column("deleted_at", UtcDateTime, nullable=True),
        sa.Column("written_at", UtcDateTime, nullable=False),
        sa.Column("written_by", sa.String(length=16), nullable=False),
        sa.Column("last_event", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "id", name=op.f("pk_tasks")),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tasks_workspace_id_project_id"),
            ["workspace_id", "project_id"],
            unique=False,
        )

    op.create_table(
        "users",
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("time_zone", sa.String(length=64), nullable=True),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("raw", Json, nullable=False),
        sa.Column("deleted_at", UtcDateTime, nullable=True),
        sa.Column("written_at", UtcDateTime, nullable=False),
        sa.Column("written_by", sa.String(length=16), nullable=False),
        sa.Column("last_event", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "id", name=op.f("pk_users")),
    )

    op.create_table(
        "entities",
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("raw", Json, nullable=False),
        sa.Column("deleted_at", UtcDateTime, nullable=True),
        sa.Column("written_at", UtcDateTime, nullable=False),
        sa.Column("written_by", sa.String(length=16), nullable=False),
        sa.Column("last_event", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "kind", "id", name=op.f("pk_entities")),
    )
    with op.batch_alter_table("entities", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_entities_workspace_id_kind_written_at"),
            ["workspace_id", "kind", "written_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("entities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_entities_workspace_id_kind_written_at"))
    op.drop_table("entities")

    op.drop_table("users")

    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_workspace_id_project_id"))
    op.drop_table("tasks")

    op.drop_table("tags")

    op.drop_table("clients")

    op.drop_table("projects")

    with op.batch_alter_table("time_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_time_entries_workspace_id_user_id_start_at"))
        batch_op.drop_index(batch_op.f("ix_time_entries_workspace_id_start_at"))
        batch_op.drop_index(batch_op.f("ix_time_entries_workspace_id_project_id"))
    op.drop_table("time_entries")
