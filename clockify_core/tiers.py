"""Tier policy: what a service is allowed to subscribe to, call and run.

A service package picks one :class:`ServiceProfile`; everything tier-specific in the
kit reads it from there instead of branching on service names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clockify_core.catalog import ALL_EVENTS, ALL_SCOPES, PLANS

ALL_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class ServiceProfile:
    name: str  # package-style name: api_studio, universal_webhook, clockify_addon
    title: str
    description: str
    default_plan: str
    scopes: tuple[str, ...]
    events: tuple[str, ...]
    plan_configurable: bool = False
    # API explorer and flow `clockify_api` actions.
    explorer_methods: frozenset[str] = frozenset({"GET"})
    writes_require_admin: bool = True
    # Flow `http_request` actions and custom (HMAC) webhook sources.
    http_actions: bool = False
    custom_webhooks: bool = False
    # Bootstrap/sync of time entries (the heavy kind) besides reference data.
    sync_time_entries: bool = False
    sidebar_label: str = "Add-on"
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown_events = set(self.events) - set(ALL_EVENTS)
        unknown_scopes = set(self.scopes) - set(ALL_SCOPES)
        if unknown_events or unknown_scopes or self.default_plan not in PLANS:
            raise ValueError(f"bad profile {self.name}: {unknown_events or ''} {unknown_scopes or ''}")
        if not self.explorer_methods <= ALL_METHODS:
            raise ValueError(f"bad explorer methods {self.explorer_methods}")

    def allows_method(self, method: str) -> bool:
        return method.upper() in self.explorer_methods

    def allows_scope(self, scope: str | None) -> bool:
        """An operation needing ``scope`` may run; unknown scopes are allowed only with all scopes."""
        if scope is None:
            return set(self.scopes) == set(ALL_SCOPES)
        return scope in self.scopes
