"""Clockify Add-on: the tier policy and the app factory."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from clockify_addon.settings import Settings
from clockify_core.app import create_addon_app
from clockify_core.catalog import ALL_SCOPES, EVENTS_BY_PRIORITY
from clockify_core.tiers import ALL_METHODS, ServiceProfile

DESCRIPTION = (
    "The reference Clockify add-on: full lifecycle, all events and scopes, hardened verification and a complete workspace mirror."
)

PROFILE = ServiceProfile(
    name="clockify_addon",
    title="Clockify Add-on",
    description=DESCRIPTION,
    default_plan="FREE",
    plan_configurable=True,
    scopes=ALL_SCOPES,
    events=EVENTS_BY_PRIORITY,
    explorer_methods=ALL_METHODS,
    http_actions=True,
    sync_time_entries=True,
    clockify_health_route=True,
    sidebar_label="Clockify Add-on",
)


def create_app(settings: Settings | None = None, **options: Any) -> FastAPI:
    """``options`` go to the kit's factory (tests pass ``clockify_transport``)."""
    return create_addon_app(settings or Settings(), PROFILE, **options)
