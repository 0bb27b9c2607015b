"""Build a tier's manifest from its profile and the deployment's settings.

Clockify caps manifest webhooks per add-on (10 in one version of the docs, 20 in
another; docs/clockify.md#manifest). The manifest declares at most ``webhook_cap`` of the
profile's events, in the profile's order; the rest are registered at install
through the Webhooks API (see ``clockify_core.lifecycle``).
"""

from __future__ import annotations

from dataclasses import dataclass

from clockify_core.catalog import webhook_path
from clockify_core.installations.settings import (
    BACKFILL_MONTHS,
    FLAGS,
    HISTORY_MONTHS,
    SYNC_INTERVAL_MINUTES,
)
from clockify_core.manifest.model import (
    Component,
    LifecycleEntry,
    LifecycleType,
    Manifest,
    Setting,
    SettingsHeader,
    SettingsTab,
    StructuredSettings,
    WebhookEntry,
)
from clockify_core.tiers import ServiceProfile

LIFECYCLE_PATHS: dict[LifecycleType, str] = {
    "INSTALLED": "/lifecycle/installed",
    "DELETED": "/lifecycle/deleted",
    "SETTINGS_UPDATED": "/lifecycle/settings-updated",
    "STATUS_CHANGED": "/lifecycle/status-changed",
}
SIDEBAR_PATH = "/ui"


def _sync_tab(*settings: Setting) -> SettingsTab:
    return SettingsTab(id="sync", name="Sync", header=SettingsHeader(title="Workspace mirror"), settings=list(settings))


# Installation settings Clockify renders and stores for us; SETTINGS_UPDATED sends them back flat.
# Defaults and ranges belong to clockify_core.installations.settings, which clamps what admins type.
SYNC_TAB = _sync_tab(
    Setting(id="sync_enabled", name="Keep the mirror in sync", type="CHECKBOX", value=FLAGS["sync_enabled"],
            access_level="ADMINS", description="Pull changes on a schedule besides webhooks"),
    Setting(id=SYNC_INTERVAL_MINUTES.id, name="Sync every (minutes)", type="NUMBER",
            value=SYNC_INTERVAL_MINUTES.default, access_level="ADMINS",
            description=f"How often incremental sync runs: {SYNC_INTERVAL_MINUTES.describe()}"),
    Setting(id=HISTORY_MONTHS.id, name="Months of history to mirror", type="NUMBER",
            value=HISTORY_MONTHS.default, access_level="ADMINS",
            description="Time entries are mirrored this many months back (0: the whole history, "
                        "fetched in the background after the recent weeks): " + HISTORY_MONTHS.describe()),
    Setting(id=BACKFILL_MONTHS.id, name="Backfill months of history (older setting)", type="NUMBER",
            value=BACKFILL_MONTHS.default, access_level="ADMINS",
            description="Used only while the setting above is 0: above 0, history stops this many months "
                        "before the recent window (0: no limit): " + BACKFILL_MONTHS.describe()),
)
# Flows' switch shares the tab (tabs with one id are merged in capability order).
FLOWS_TAB = _sync_tab(
    Setting(id="flows_enabled", name="Run flows", type="CHECKBOX", value=FLAGS["flows_enabled"],
            access_level="ADMINS", description="Switch every flow of this workspace on or off"),
)
# The label is the profile's (``sidebar_label``).
SIDEBAR = Component(type="sidebar", access_level="ADMINS", path=SIDEBAR_PATH, label="")


@dataclass(frozen=True)
class ManifestPart:
    """Manifest entries a capability brings (``clockify_core.capability``): components (a
    sidebar, a widget...) and installation settings. Tabs with the same id are merged in
    order; a component without a label gets the profile's ``sidebar_label``."""

    components: tuple[Component, ...] = ()
    tabs: tuple[SettingsTab, ...] = ()

    def __add__(self, other: ManifestPart) -> ManifestPart:
        return ManifestPart(self.components + other.components, self.tabs + other.tabs)

    def settings(self) -> StructuredSettings | None:
        merged: dict[str, SettingsTab] = {}
        for tab in self.tabs:
            if tab.id in merged:
                merged[tab.id] = merged[tab.id].model_copy(update={"settings": [*merged[tab.id].settings, *tab.settings]})
            else:
                merged[tab.id] = tab
        return StructuredSettings(tabs=list(merged.values())) if merged else None


# What the three services compose: the sync and flows settings and the sidebar.
STANDARD_PARTS = ManifestPart(components=(SIDEBAR,), tabs=(SYNC_TAB, FLOWS_TAB))
DEFAULT_SETTINGS = STANDARD_PARTS.settings() or StructuredSettings(tabs=[])


def manifest_webhook_events(profile: ServiceProfile, cap: int) -> tuple[str, ...]:
    return profile.events[: max(0, cap)]


def runtime_webhook_events(profile: ServiceProfile, cap: int) -> tuple[str, ...]:
    return profile.events[max(0, cap) :]


def build_manifest(
    profile: ServiceProfile,
    *,
    addon_key: str,
    base_url: str,
    name: str | None = None,
    plan: str | None = None,
    webhook_cap: int = 10,
    parts: ManifestPart = STANDARD_PARTS,
) -> Manifest:
    settings = parts.settings()
    components = [c if c.label else c.model_copy(update={"label": profile.sidebar_label}) for c in parts.components]
    return Manifest.model_validate(
        {
            "schemaVersion": "1.5",
            "key": addon_key,
            "name": name or profile.title,
            "description": profile.description,
            "baseUrl": base_url.rstrip("/"),
            "minimalSubscriptionPlan": (plan if profile.plan_configurable and plan else profile.default_plan),
            "scopes": list(profile.scopes),
            "lifecycle": [LifecycleEntry(type=t, path=p) for t, p in LIFECYCLE_PATHS.items()],
            "webhooks": [
                WebhookEntry(event=e, path=webhook_path(e)) for e in manifest_webhook_events(profile, webhook_cap)
            ],
            "components": components,
            **({"settings": settings} if settings is not None else {}),
        }
    )
