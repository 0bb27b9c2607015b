"""The workspace mirror: Clockify bodies mapped to typed tables and applied in order."""

from clockify_core.mirror.capability import MIRROR

__all__ = ["MIRROR"]
