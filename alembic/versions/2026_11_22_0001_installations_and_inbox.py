"""Installations, their webhooks, the durable inbox and custom webhook sources

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Migrations keep their own copies of column types so later model changes cannot rewrite history.
UtcDateTime = sa.DateTime(timezone=True)
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "installations",
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("addon_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("auth_token_encrypted", sa.Text(), nullable=True),
        sa.Column("api_url", sa.Text(), nullable=True),
        sa.Column("backend_url", sa.Text(), nullable=True),
        sa.Column("reports_url", sa.Text(), nullable=True),
        sa.Column("pto_url", sa.Text(), nullable=True),
        sa.Column("as_user", sa.String(length=64), nullable=True),
        sa.Column("addon_user_id", sa.String(length=64), nullable=True),
        sa.Column("subscription_plan", sa.String(length=16), nullable=True),
        sa.Column("settings", Json, nullable=False),
        sa.Column("installed_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("status_changed_at", UtcDateTime, nullable=True),
        sa.Column("deleted_at", UtcDateTime, nullable=True),
        sa.Column("purge_after", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_installations")),
    )

    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("token_encrypted", sa.Text(), nullable=True),
        sa.Column("token_digest", sa.String(length=64), nullable=True),
        sa.Column("clockify_webhook_id", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["installations.workspace_id"],
            name=op.f("fk_webhook_subscriptions_workspace_id_installations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscriptions")),
        sa.UniqueConstraint(
            "workspace_id",
            "path",
            "event_type",
            name=op.f("uq_webhook_subscriptions_workspace_id_path_event_type"),
        ),
    )
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_subscriptions_token_digest"), ["token_digest"], unique=False
        )

    op.create_table(
        "inbox_events",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("source_ref", sa.String(length=64), nullable=True),
        sa.Column("dedup_key", sa.String(length=64), nullable=False),
        sa.Column("entity_key", sa.String(length=200), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=False),
        sa.Column("locked_by", sa.String(length=64), nullable=True),
        sa.Column("locked_until", UtcDateTime, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.Column("processed_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_events")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_inbox_events_dedup_key")),
    )
    with op.batch_alter_table("inbox_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_inbox_events_status_next_attempt_at"),
            ["status", "next_attempt_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_inbox_events_workspace_id_received_at"),
            ["workspace_id", "received_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_inbox_events_workspace_id_entity_key_id"),
            ["workspace_id", "entity_key", "id"],
            unique=False,
        )

    op.create_table(
        "custom_webhook_sources",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("secrets_encrypted", sa.Text(), nullable=False),
        sa.Column("signature_header", sa.String(length=100), nullable=False),
        sa.Column("timestamp_header", sa.String(length=100), nullable=True),
        sa.Column("tolerance_seconds", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("settings", Json, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_webhook_sources")),
    )
    with op.batch_alter_table("custom_webhook_sources", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_custom_webhook_sources_workspace_id"), ["workspace_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("custom_webhook_sources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_custom_webhook_sources_workspace_id"))
    op.drop_table("custom_webhook_sources")

    with op.batch_alter_table("inbox_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbox_events_workspace_id_entity_key_id"))
        batch_op.drop_index(batch_op.f("ix_inbox_events_workspace_id_received_at"))
        batch_op.drop_index(batch_op.f("ix_inbox_events_status_next_attempt_at"))
    op.drop_table("inbox_events")

    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_subscriptions_token_digest"))
    op.drop_table("webhook_subscriptions")

    op.drop_table("installations")
