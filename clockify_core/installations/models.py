"""Installations and the webhooks each one receives."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from clockify_core.db.base import Base, JsonType, UtcDateTime, utcnow
from clockify_core.db.purge import KEEP_ON_PURGE


class InstallationStatus(StrEnum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    DELETED = "DELETED"


class SubscriptionSource(StrEnum):
    MANIFEST = "MANIFEST"  # declared in the manifest, token from the INSTALLED payload
    RUNTIME = "RUNTIME"  # registered through the Webhooks API at install time


class SubscriptionStatus(StrEnum):
    ACTIVE = "ACTIVE"
    REFUSED = "REFUSED"  # Clockify refused the registration (plan limits); see `error`
    REMOVED = "REMOVED"


REVOKED_TOKENS_KEPT = 20


class Installation(Base):
    __tablename__ = "installations"
    # The record of who was installed (revoked tokens, purge_after) outlives the workspace's data.
    __table_args__ = {"info": {KEEP_ON_PURGE: True}}

    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    addon_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=InstallationStatus.ACTIVE)
    auth_token_encrypted: Mapped[str | None] = mapped_column(Text)
    # sha256 of the tokens uninstalls revoked (newest last, at most REVOKED_TOKENS_KEPT):
    # an INSTALLED carrying one of them is a replay.
    revoked_token_digests: Mapped[list[str] | None] = mapped_column(JsonType)
    api_url: Mapped[str | None] = mapped_column(Text)
    backend_url: Mapped[str | None] = mapped_column(Text)
    reports_url: Mapped[str | None] = mapped_column(Text)
    pto_url: Mapped[str | None] = mapped_column(Text)
    as_user: Mapped[str | None] = mapped_column(String(64))
    addon_user_id: Mapped[str | None] = mapped_column(String(64))
    subscription_plan: Mapped[str | None] = mapped_column(String(16))
    settings: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    installed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    status_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    purge_after: Mapped[datetime | None] = mapped_column(UtcDateTime)


class UsedLifecycleToken(Base):
    """A lifecycle token that was accepted once: every instance refuses it for another call.

    Keyed by the SHA-256 of the token, inserted in the transaction of the lifecycle change
    it authorized (a refused or failed call leaves no row). ``expires_at`` is the token's
    ``exp`` plus the verifier's leeway: from then on the verifier refuses it anyway, and
    retention deletes the row.
    """

    __tablename__ = "used_lifecycle_tokens"
    __table_args__ = (Index(None, "expires_at"),)

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    event: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class WebhookSubscription(Base):
    __tablename__ = "webhook_subscriptions"
    __table_args__ = (
        UniqueConstraint("workspace_id", "path", "event_type"),
        Index(None, "token_digest"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("installations.workspace_id", ondelete="CASCADE")
    )
    event_type: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=SubscriptionStatus.ACTIVE)
    token_encrypted: Mapped[str | None] = mapped_column(Text)
    token_digest: Mapped[str | None] = mapped_column(String(64))
    clockify_webhook_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
