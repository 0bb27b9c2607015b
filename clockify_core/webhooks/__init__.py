"""Webhooks in: verified, stored durably with a dedup key, answered fast, applied by inbox workers."""

from clockify_core.webhooks.capability import CUSTOM_SOURCES, WEBHOOKS

__all__ = ["CUSTOM_SOURCES", "WEBHOOKS"]
