"""API Studio: the tier policy and the app factory."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api_studio.settings import Settings
from clockify_core.app import create_addon_app
from clockify_core.catalog import COMMON_EVENTS
from clockify_core.tiers import ServiceProfile

DESCRIPTION = (
    "Mirror a Clockify workspace (reference data by pull, time entries from webhooks), automate it with "
    "no-code flows, and explore its API read-only."
)

PROFILE = ServiceProfile(
    name="api_studio",
    title="API Studio",
    description=DESCRIPTION,
    default_plan="STANDARD",
    scopes=(
        "WORKSPACE_READ", "USER_READ", "GROUP_READ", "PROJECT_READ", "CLIENT_READ",
        "TAG_READ", "TASK_READ", "TIME_ENTRY_READ", "CUSTOM_FIELDS_READ",
    ),
    events=COMMON_EVENTS,
    explorer_methods=frozenset({"GET"}),
    sidebar_label="API Studio",
)


def create_app(settings: Settings | None = None, **options: Any) -> FastAPI:
    """``options`` go to the kit's factory (tests pass ``clockify_transport``)."""
    return create_addon_app(settings or Settings(), PROFILE, **options)
