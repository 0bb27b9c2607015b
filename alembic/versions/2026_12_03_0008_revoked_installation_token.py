"""Remember the digests of uninstalled installations' tokens

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

Clockify revokes the installation token at uninstall. Keeping the SHA-256 digests of the
revoked tokens (the newest 20) lets a replayed INSTALLED (a captured request carrying one
of them) be refused, while a genuine reinstall, which brings a new token, is not.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("installations") as batch:
        batch.add_column(
            sa.Column("revoked_token_digests", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("installations") as batch:
        batch.drop_column("revoked_token_digests")
