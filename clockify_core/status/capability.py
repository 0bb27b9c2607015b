"""The workspace status page's API as a capability."""

from clockify_core.capability import Capability
from clockify_core.status.router import router

STATUS = Capability(name="status", routers=(router,))
