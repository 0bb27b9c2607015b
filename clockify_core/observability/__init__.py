"""Logs, metrics and request ids."""

from clockify_core.observability.logging import configure_logging, redact
from clockify_core.observability.metrics import Metrics

__all__ = ["Metrics", "configure_logging", "redact"]
