"""Installations: the tenant record every capability reads (who installed, plan, token, settings).

Lifecycle writes these rows; everything else only reads them. It sits below the features
so that webhooks, jobs, mirror, sync and flows can ask "is this workspace installed and
active?" without importing the lifecycle endpoints.
"""

from clockify_core.installations.models import Installation, InstallationStatus, WebhookSubscription
from clockify_core.installations.repository import (
    get_installation,
    installation_api,
    require_installation,
)

__all__ = [
    "Installation", "InstallationStatus", "WebhookSubscription", "get_installation", "installation_api",
    "require_installation",
]
