"""Errors of the Clockify client; they extend the kit's tree (``clockify_core.errors``).

    UpstreamError (502 upstream-error)
    ├── ClockifyApiError (502 clockify-api-error)   non-2xx after retries, or no answer at all
    └── MissingBaseUrl (502 missing-base-url)       the token carried no URL for that API

``HostNotAllowed`` (also an ``UpstreamError``) is raised by the allowlist.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from clockify_core.client.transports import parse_retry_after
from clockify_core.errors import UpstreamError
from clockify_core.observability.logging import redact_text

_EXCERPT_CHARS = 200
_WHITESPACE = re.compile(r"\s+")


def body_excerpt(response: httpx.Response, limit: int = _EXCERPT_CHARS) -> str:
    """The start of a response body on one line, with anything token-shaped masked."""
    try:
        text = response.text
    except (httpx.ResponseNotRead, UnicodeDecodeError, LookupError):
        return ""
    text = _WHITESPACE.sub(" ", text).strip()
    if len(text) > limit:
        text = text[:limit] + "…"
    return redact_text(text)


class ClockifyApiError(UpstreamError):
    """A Clockify call that failed after the retry policy gave up.

    ``status_code`` is Clockify's HTTP status, or ``None`` when no response arrived
    (connection refused, timeouts); ``not_found`` is the case callers usually branch on.
    ``retry_after`` holds Clockify's ``Retry-After`` in seconds when it sent one (a 429
    that outlasted the retries), so a job can reschedule itself. The problem body shows
    ``upstream_status``; the redacted body excerpt is part of the detail.
    """

    slug = "clockify-api-error"
    title = "Clockify API call failed"

    def __init__(
        self,
        detail: str,
        *,
        status_code: int | None,
        method: str,
        url: str,
        body_excerpt: str = "",
        attempts: int = 1,
        retry_after: float | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail, upstream_status=status_code, **extensions)
        self.status_code = status_code
        self.method = method
        self.url = url
        self.body_excerpt = body_excerpt
        self.attempts = attempts
        self.retry_after = retry_after

    @property
    def not_found(self) -> bool:
        return self.status_code == 404

    @classmethod
    def from_response(cls, response: httpx.Response, *, attempts: int = 1) -> ClockifyApiError:
        request = response.request
        excerpt = body_excerpt(response)
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        detail = f"Clockify answered {response.status_code} to {request.method} {request.url.path}{tries}"
        if excerpt:
            detail += f": {excerpt}"
        return cls(
            detail,
            status_code=response.status_code,
            method=request.method,
            url=str(request.url.copy_with(query=None)),
            body_excerpt=excerpt,
            attempts=attempts,
            retry_after=parse_retry_after(response.headers.get("Retry-After"), now=time.time()),
        )

    @classmethod
    def from_exception(
        cls, exc: httpx.RequestError, request: httpx.Request, *, attempts: int = 1
    ) -> ClockifyApiError:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        reason = str(exc) or type(exc).__name__
        detail = f"{request.method} {request.url.host}{request.url.path} failed{tries}: {type(exc).__name__}: {reason}"
        return cls(
            detail,
            status_code=None,
            method=request.method,
            url=str(request.url.copy_with(query=None)),
            attempts=attempts,
        )


class MissingBaseUrl(UpstreamError):
    """The workspace has no base URL for the API kind asked for (e.g. no ``reportsUrl`` claim)."""

    slug = "missing-base-url"
    title = "No base URL for this Clockify API"
