"""The kit's public surface: everything a service or an add-on of your own builds with.

Services (``api_studio``, ``universal_webhook``, ``clockify_addon``) and the examples
import from here only (an import-linter contract checks it); the packages behind these
names may move. docs/sdk.md walks through building an add-on with them.
"""

from clockify_core.access import AdminDep, UserContext, UserDep, verify_user_token
from clockify_core.app import create_addon_app
from clockify_core.capability import Capability, Composition, EventHandler, JobHandler, Loop
from clockify_core.catalog import ALL_EVENTS, ALL_SCOPES, COMMON_EVENTS, EVENTS_BY_PRIORITY
from clockify_core.cli import build_cli
from clockify_core.config import ServiceSettings
from clockify_core.deps import RuntimeDep, SessionDep
from clockify_core.errors import BadRequest, ClockifyError, Forbidden, NotFound
from clockify_core.explorer.capability import EXPLORER
from clockify_core.flows.capability import FLOWS
from clockify_core.health.capability import HEALTH, MARKETPLACE_HEALTH, METRICS
from clockify_core.installations.models import Installation
from clockify_core.installations.repository import get_installation, installation_api
from clockify_core.installations.settings import NumberSetting, number
from clockify_core.jobs.capability import JOBS
from clockify_core.lifecycle.capability import LIFECYCLE
from clockify_core.manifest.builder import ManifestPart
from clockify_core.manifest.model import Component, Setting, SettingsHeader, SettingsTab
from clockify_core.mirror.capability import MIRROR
from clockify_core.mirror.models import TimeEntry
from clockify_core.operator.capability import OPERATOR
from clockify_core.retention.capability import RETENTION
from clockify_core.runtime import Runtime
from clockify_core.startup import load_settings
from clockify_core.status.capability import STATUS
from clockify_core.sync.capability import SYNC
from clockify_core.tiers import ALL_METHODS, ServiceProfile
from clockify_core.ui.capability import UI
from clockify_core.webhooks.capability import CUSTOM_SOURCES, WEBHOOKS

__all__ = [
    "ALL_EVENTS", "ALL_METHODS", "ALL_SCOPES", "COMMON_EVENTS", "CUSTOM_SOURCES", "EVENTS_BY_PRIORITY", "EXPLORER",
    "FLOWS", "HEALTH", "JOBS", "LIFECYCLE", "MARKETPLACE_HEALTH", "METRICS", "MIRROR", "OPERATOR", "RETENTION",
    "STATUS", "SYNC", "UI", "WEBHOOKS",
    "AdminDep", "BadRequest", "Capability", "ClockifyError", "Component", "Composition", "EventHandler", "Forbidden",
    "Installation", "JobHandler", "Loop", "ManifestPart", "NotFound", "NumberSetting", "Runtime", "RuntimeDep",
    "ServiceProfile", "ServiceSettings", "SessionDep", "Setting", "SettingsHeader", "SettingsTab", "TimeEntry", "UserContext",
    "UserDep", "build_cli", "create_addon_app", "get_installation", "installation_api", "load_settings", "number",
    "verify_user_token",
]
