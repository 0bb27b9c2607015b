"""structlog configuration and the redaction processor.

Messages are event names (``"webhook.accepted"``). Every event passes through
:func:`redact`, which masks values under secret-looking keys and any JWT-looking
string anywhere, so a token never reaches a log line whatever key carries it. Query
strings get the same treatment per parameter (:func:`redact_query`, and URLs inside
text), since ``GET /api/status?auth_token=...`` is how the sidebar calls.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import structlog

from clockify_core.config import LoggingConfig

REDACTED = "[REDACTED]"

_SECRET_KEY = re.compile(
    r"(token|secret|password|passwd|api[-_]?key|apikey|authorization|signature|cookie|encryption[-_]?key|auth)",
    re.IGNORECASE,
)
# Three base64url segments, the first two starting like a JSON object header/payload.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
# A secret-named parameter of a URL written in text (``?auth_token=...&``).
_QUERY_SECRET = re.compile(
    r"(?i)([?&;][^=&\s]*(?:token|secret|password|passwd|api[-_]?key|apikey|signature|auth)[^=&\s]*=)[^&#\s\"']+"
)


def redact_text(text: str) -> str:
    text = _QUERY_SECRET.sub(r"\1" + REDACTED, text)
    return _BEARER.sub(r"\1 " + REDACTED, _JWT.sub(REDACTED, text))


def redact_query(query: bytes | str) -> str:
    """A query string for a log line: secret-named parameters masked, the others kept."""
    text = query.decode("latin-1") if isinstance(query, bytes) else query
    pairs = parse_qsl(text, keep_blank_values=True)
    return urlencode([(k, _redact_value(k, v)) for k, v in pairs], safe="[]")


def _redact_value(key: str | None, value: Any, depth: int = 0) -> Any:
    if (key is not None and _SECRET_KEY.search(key) and value not in (None, "", [], {})
            and not isinstance(value, bool | int | float)):
        return REDACTED
    if depth > 8:
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(str(k), v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(None, v, depth + 1) for v in value]
    return value


def redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secrets by key name and JWT-looking strings by shape."""
    for key in list(event_dict):
        event_dict[key] = _redact_value(None if key == "event" else key, event_dict[key])
    return event_dict


def configure_logging(config: LoggingConfig, *, stream: Any = None) -> None:
    """Configure structlog and route stdlib logging (uvicorn, SQLAlchemy) through it."""
    stream = stream or sys.stderr
    use_console = config.format == "console" or (config.format == "auto" and stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info if not use_console else structlog.processors.StackInfoRenderer(),
        redact,
    ]
    # Plain tracebacks: rich's default shows every frame's locals, tokens included.
    renderer: Any = (
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
        if use_console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(config.level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # Access lines duplicate our own request logs.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
