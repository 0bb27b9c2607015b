"""The operator API (all installations, dead letters, replay) as a capability."""

from clockify_core.capability import Capability
from clockify_core.operator.router import router

OPERATOR = Capability(name="operator", routers=(router,))
