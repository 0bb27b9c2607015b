"""Universal Webhook: its tier policy, its capabilities and the app factory."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from clockify_core import kit
from universal_webhook.settings import Settings

DESCRIPTION = (
    "Every Clockify event and your own HMAC-signed webhooks into one live workspace mirror, with flows that call any API or URL."
)

PROFILE = kit.ServiceProfile(
    name="universal_webhook",
    title="Universal Webhook",
    description=DESCRIPTION,
    default_plan="ENTERPRISE",
    scopes=kit.ALL_SCOPES,
    events=kit.EVENTS_BY_PRIORITY,
    explorer_methods=kit.ALL_METHODS,
    http_actions=True,
    custom_webhooks=True,
    sync_time_entries=True,
    sidebar_label="Universal Webhook",
)

# What this add-on is made of, in order: routes, manifest settings and event handlers follow it
# (the mirror before flows: flows see an event once it is applied).
CAPABILITIES = (
    kit.HEALTH, kit.METRICS, kit.CUSTOM_SOURCES, kit.LIFECYCLE, kit.WEBHOOKS, kit.JOBS, kit.MIRROR,
    kit.STATUS, kit.OPERATOR, kit.SYNC, kit.FLOWS, kit.EXPLORER, kit.UI, kit.RETENTION,
)


def create_app(settings: Settings | None = None, **options: Any) -> FastAPI:
    """``options`` go to the kit's factory (tests pass ``clockify_transport``)."""
    return kit.create_addon_app(settings or Settings(), PROFILE, CAPABILITIES, **options)
