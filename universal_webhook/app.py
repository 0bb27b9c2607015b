"""Universal Webhook: the tier policy and the app factory."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from clockify_core.app import create_addon_app
from clockify_core.catalog import ALL_SCOPES, EVENTS_BY_PRIORITY
from clockify_core.tiers import ALL_METHODS, ServiceProfile
from universal_webhook.settings import Settings

DESCRIPTION = (
    "Every Clockify event and your own HMAC-signed webhooks into one live workspace mirror, with flows that call any API or URL."
)

PROFILE = ServiceProfile(
    name="universal_webhook",
    title="Universal Webhook",
    description=DESCRIPTION,
    default_plan="ENTERPRISE",
    scopes=ALL_SCOPES,
    events=EVENTS_BY_PRIORITY,
    explorer_methods=ALL_METHODS,
    http_actions=True,
    custom_webhooks=True,
    sync_time_entries=True,
    sidebar_label="Universal Webhook",
)


def create_app(settings: Settings | None = None, **options: Any) -> FastAPI:
    """``options`` go to the kit's factory (tests pass ``clockify_transport``)."""
    return create_addon_app(settings or Settings(), PROFILE, **options)
