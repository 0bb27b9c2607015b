"""Custom webhook sources verify the Standard Webhooks headers only

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22

Custom sources are signed with the fixed Standard Webhooks headers (webhook-id,
webhook-timestamp, webhook-signature; docs/custom-webhooks.md), so the per-source header
names are dropped. Downgrading restores them with the names the old scheme used.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("custom_webhook_sources", schema=None) as batch_op:
        batch_op.drop_column("timestamp_header")
        batch_op.drop_column("signature_header")


def downgrade() -> None:
    with op.batch_alter_table("custom_webhook_sources", schema=None) as batch_op:
        # server_default fills existing rows; the old model supplied the value on insert.
        batch_op.add_column(
            sa.Column(
                "signature_header",
                sa.String(length=100),
                nullable=False,
                server_default="X-Signature",
            )
        )
        batch_op.add_column(
            sa.Column(
                "timestamp_header",
                sa.String(length=100),
                nullable=True,
                server_default="X-Timestamp",
            )
        )
    with op.batch_alter_table("custom_webhook_sources", schema=None) as batch_op:
        batch_op.alter_column("signature_header", server_default=None)
        batch_op.alter_column("timestamp_header", server_default=None)
