"""A workspace's add-on status: installation, webhook coverage, jobs, sync, recent events."""

from clockify_core.status.capability import STATUS

__all__ = ["STATUS"]
