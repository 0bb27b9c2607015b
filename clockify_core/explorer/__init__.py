"""The API explorer: every Clockify operation the profile allows, called with the user's own rights."""

from clockify_core.explorer.capability import EXPLORER

__all__ = ["EXPLORER"]
