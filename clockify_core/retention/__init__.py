"""Deleting what has outlived its window, and the data of uninstalled workspaces."""

from clockify_core.retention.capability import RETENTION

__all__ = ["RETENTION"]
