"""Liveness, readiness and Prometheus metrics endpoints."""

from clockify_core.health.capability import HEALTH, MARKETPLACE_HEALTH, METRICS

__all__ = ["HEALTH", "MARKETPLACE_HEALTH", "METRICS"]
