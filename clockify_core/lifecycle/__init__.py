"""Clockify's lifecycle calls (installed, deleted, settings, status) and webhook registration."""

from clockify_core.lifecycle.capability import LIFECYCLE

__all__ = ["LIFECYCLE"]
