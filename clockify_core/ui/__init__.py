"""The sidebar page Clockify shows in an iframe: status, API explorer and flow editor (docs/ui.md)."""

from clockify_core.ui.capability import UI

__all__ = ["UI"]
