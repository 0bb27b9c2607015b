"""Remember the lifecycle tokens already accepted

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

A lifecycle token authorizes one call. The SHA-256 of each accepted token is stored in
the transaction of the change it made, so every instance refuses it for a second call;
``expires_at`` (its ``exp`` plus the verifier's leeway) tells retention when the row can go.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UtcDateTime = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "used_lifecycle_tokens",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("used_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_used_lifecycle_tokens")),
    )
    op.create_index(op.f("ix_used_lifecycle_tokens_expires_at"), "used_lifecycle_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_used_lifecycle_tokens_expires_at"), table_name="used_lifecycle_tokens")
    op.drop_table("used_lifecycle_tokens")
