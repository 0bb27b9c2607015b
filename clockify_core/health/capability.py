"""Health, readiness and metrics endpoints, as capabilities a service lists."""

from clockify_core.capability import Capability
from clockify_core.health.router import clockify_health_router, metrics_router, router

HEALTH = Capability(name="health", routers=(router,))
# `/health` in the shape Clockify's marketplace checks expect (the reference add-on serves it).
MARKETPLACE_HEALTH = Capability(name="marketplace-health", routers=(clockify_health_router,))
METRICS = Capability(name="metrics", routers=(metrics_router,))
