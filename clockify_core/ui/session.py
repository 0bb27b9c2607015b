"""What the page knows about its viewer: the verified claims it needs and the tier's features."""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from clockify_core.access import UserContext
from clockify_core.config import UiConfig
from clockify_core.flows.actions import available_types
from clockify_core.tiers import ServiceProfile


class ServiceFeatures(BaseModel):
    name: str
    title: str
    explorer_methods: list[str]
    writes_require_admin: bool
    http_actions: bool
    custom_webhooks: bool
    events: list[str] = Field(description="Events this service receives (flow triggers, webhook coverage)")
    flow_actions: list[str] = Field(description="Flow action types this tier allows")


class SessionRead(BaseModel):
    workspace_id: str
    addon_id: str
    user_id: str | None
    role: str | None
    is_admin: bool
    theme: str = Field(description="DEFAULT or DARK, from the token's theme claim")
    language: str | None
    expires_at: int = Field(description="The token's exp (epoch seconds)")
    server_time: int = Field(description="The server's clock, so the page can allow for skew")
    refresh_before_seconds: int = Field(description="Ask Clockify for a new token this long before expires_at")
    installation_status: str
    service: ServiceFeatures


def features(profile: ServiceProfile) -> ServiceFeatures:
    return ServiceFeatures(
        name=profile.name,
        title=profile.title,
        explorer_methods=sorted(profile.explorer_methods),
        writes_require_admin=profile.writes_require_admin,
        http_actions=profile.http_actions,
        custom_webhooks=profile.custom_webhooks,
        events=list(profile.events),
        flow_actions=available_types(profile),
    )


def session_of(user: UserContext, profile: ServiceProfile, config: UiConfig) -> SessionRead:
    claims = user.claims
    # A verified user token always carries exp (TokenVerifier requires it on user tokens).
    expires_at = claims.exp if claims.exp is not None else int(time.time())
    return SessionRead(
        workspace_id=user.workspace_id,
        addon_id=claims.addon_id,
        user_id=user.user_id,
        role=claims.workspace_role,
        is_admin=user.is_admin,
        theme="DARK" if (claims.theme or "").upper() == "DARK" else "DEFAULT",
        language=claims.language,
        expires_at=expires_at,
        server_time=int(time.time()),
        refresh_before_seconds=config.token_refresh_seconds,
        installation_status=str(user.installation.status),
        service=features(profile),
    )
