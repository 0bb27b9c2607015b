"""One error tree for the whole kit, rendered as RFC 9457 problem details.

    ClockifyError (500 internal)
    ├── BadRequest (400 bad-request)
    │   └── MalformedBody (400 malformed-body)
    ├── Unauthorized (401 unauthorized)
    │   └── TokenInvalid (401 token-invalid)            bad signature, claims, expiry
    ├── Forbidden (403 forbidden)
    │   ├── WorkspaceMismatch (403 workspace-mismatch)   token of workspace A on B
    │   └── MethodNotAllowedForTier (403 tier-policy)
    ├── NotFound (404 not-found)
    ├── Conflict (409 conflict)
    ├── PayloadTooLarge (413 payload-too-large)
    ├── ValidationFailed (422 validation-failed)       carries ``errors``
    ├── RateLimited (429 rate-limited)                  carries ``retry_after``
    ├── UpstreamError (502 upstream-error)              Clockify answered badly
    │   └── HostNotAllowed (502 host-not-allowed)       outbound URL outside the allowlist
    ├── ServiceUnavailable (503 service-unavailable)    database or Redis down
    └── ConfigurationError (500 configuration-error)    refused settings

Every error knows its HTTP status, a stable ``type`` URI and a short title; the
instance adds a human ``detail`` (the reason) and optional extension members.
This module is the base layer: it imports no web framework and no database driver, so
settings, the client, security and the database kit can raise these errors without
depending on FastAPI. The web layer renders them (``clockify_core.web.problems``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:clockify-addons:problem:"


class ClockifyError(Exception):
    """Base of every error the kit raises on purpose."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        self.detail = detail or self.title
        self.headers = dict(headers or {})
        self.extensions = extensions
        super().__init__(self.detail)

    @property
    def type_uri(self) -> str:
        return PROBLEM_TYPE_BASE + self.slug

    def to_problem(self, *, instance: str | None = None, request_id: str | None = None) -> dict[str, Any]:
        return problem_body(
            status=self.status,
            title=self.title,
            detail=self.detail,
            type_uri=self.type_uri,
            instance=instance,
            request_id=request_id,
            **self.extensions,
        )


class BadRequest(ClockifyError):
    status = 400
    slug = "bad-request"
    title = "Bad request"


class MalformedBody(BadRequest):
    slug = "malformed-body"
    title = "Malformed request body"


class Unauthorized(ClockifyError):
    status = 401
    slug = "unauthorized"
    title = "Unauthorized"


class TokenInvalid(Unauthorized):
    slug = "token-invalid"
    title = "Token rejected"


class Forbidden(ClockifyError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class WorkspaceMismatch(Forbidden):
    slug = "workspace-mismatch"
    title = "Token belongs to another workspace"


class MethodNotAllowedForTier(Forbidden):
    slug = "tier-policy"
    title = "Not allowed on this tier"


class NotFound(ClockifyError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(ClockifyError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class PayloadTooLarge(ClockifyError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class ValidationFailed(ClockifyError):
    status = 422
    slug = "validation-failed"
    title = "Validation failed"

    def __init__(self, detail: str | None = None, *, errors: Sequence[Mapping[str, Any]] = (), **kw: Any) -> None:
        super().__init__(detail, errors=[dict(e) for e in errors], **kw)


class RateLimited(ClockifyError):
    status = 429
    slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after: float = 1.0, **kw: Any) -> None:
        seconds = max(1, round(retry_after + 0.499))
        super().__init__(detail, headers={"Retry-After": str(seconds)}, retry_after=seconds, **kw)


class UpstreamError(ClockifyError):
    status = 502
    slug = "upstream-error"
    title = "Clockify request failed"


class HostNotAllowed(UpstreamError):
    slug = "host-not-allowed"
    title = "Outbound host not allowed"


class ServiceUnavailable(ClockifyError):
    status = 503
    slug = "service-unavailable"
    title = "Service unavailable"


class ConfigurationError(ClockifyError):
    status = 500
    slug = "configuration-error"
    title = "Invalid configuration"


def problem_body(
    *,
    status: int,
    title: str,
    detail: str | None = None,
    type_uri: str = "about:blank",
    instance: str | None = None,
    request_id: str | None = None,
    **extensions: Any,
) -> dict[str, Any]:
    """An RFC 9457 problem object; extension members are kept after the standard ones."""
    body: dict[str, Any] = {"type": type_uri, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if request_id:
        body["request_id"] = request_id
    body.update({k: v for k, v in extensions.items() if v is not None})
    return body
