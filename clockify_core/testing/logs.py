"""Log lines of a test, captured in a buffer, with the previous logging set-up restored after."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from clockify_core.config import LoggingConfig
from clockify_core.observability.logging import configure_logging


@contextmanager
def captured_logs(config: LoggingConfig | None = None) -> Iterator[io.StringIO]:
    """Route every log line (structlog and stdlib) to a buffer while the block runs."""
    root = logging.getLogger()
    handlers, level, saved = root.handlers[:], root.level, structlog.get_config()
    stream = io.StringIO()
    configure_logging(config or LoggingConfig(format="json"), stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.configure(**saved)
