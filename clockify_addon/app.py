"""Clockify Add-on: its tier policy, its capabilities and the app factory."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from clockify_addon.settings import Settings
from clockify_core import kit

DESCRIPTION = (
    "The reference Clockify add-on: full lifecycle, all events and scopes, hardened verification and a complete workspace mirror."
)

PROFILE = kit.ServiceProfile(
    name="clockify_addon",
    title="Clockify Add-on",
    description=DESCRIPTION,
    default_plan="FREE",
    plan_configurable=True,
    scopes=kit.ALL_SCOPES,
    events=kit.EVENTS_BY_PRIORITY,
    explorer_methods=kit.ALL_METHODS,
    http_actions=True,
    sync_time_entries=True,
    sidebar_label="Clockify Add-on",
)

# What this add-on is made of, in order: routes, manifest settings and event handlers follow it
# (the mirror before flows: flows see an event once it is applied).
CAPABILITIES = (
    kit.HEALTH, kit.METRICS, kit.MARKETPLACE_HEALTH, kit.LIFECYCLE, kit.WEBHOOKS, kit.JOBS, kit.MIRROR,
    kit.STATUS, kit.OPERATOR, kit.SYNC, kit.FLOWS, kit.EXPLORER, kit.UI, kit.RETENTION,
)


def create_app(settings: Settings | None = None, **options: Any) -> FastAPI:
    """``options`` go to the kit's factory (tests pass ``clockify_transport``)."""
    return kit.create_addon_app(settings or Settings(), PROFILE, CAPABILITIES, **options)
