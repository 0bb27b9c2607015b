"""API Studio: its tier policy, its capabilities and the app factory."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api_studio.settings import Settings
from clockify_core import kit

DESCRIPTION = (
    "Mirror a Clockify workspace (reference data by pull, time entries from webhooks), automate it with "
    "no-code flows, and explore its API read-only."
)

PROFILE = kit.ServiceProfile(
    name="api_studio",
    title="API Studio",
    description=DESCRIPTION,
    default_plan="STANDARD",
    scopes=(
        "WORKSPACE_READ", "USER_READ", "GROUP_READ", "PROJECT_READ", "CLIENT_READ",
        "TAG_READ", "TASK_READ", "TIME_ENTRY_READ", "CUSTOM_FIELDS_READ",
    ),
    events=kit.COMMON_EVENTS,
    explorer_methods=frozenset({"GET"}),
    sidebar_label="API Studio",
)

# What this add-on is made of, in order: routes, manifest settings and event handlers follow it
# (the mirror before flows: flows see an event once it is applied).
CAPABILITIES = (
    kit.HEALTH, kit.METRICS, kit.LIFECYCLE, kit.WEBHOOKS, kit.JOBS, kit.MIRROR, kit.STATUS, kit.OPERATOR,
    kit.SYNC, kit.FLOWS, kit.EXPLORER, kit.UI, kit.RETENTION,
)


def create_app(settings: Settings | None = None, **options: Any) -> FastAPI:
    """``options`` go to the kit's factory (tests pass ``clockify_transport``)."""
    return kit.create_addon_app(settings or Settings(), PROFILE, CAPABILITIES, **options)
