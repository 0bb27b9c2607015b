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
``install_error_handlers`` registers the one handler that renders them, the
request-validation handler and the catch-all for unexpected exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:clockify-addons:problem:"

log = structlog.get_logger("clockify_core.errors")


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


_HTTP_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Validation failed",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


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


def problem_response(
    body: Mapping[str, Any], *, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        dict(body), status_code=int(body["status"]), headers=dict(headers or {}), media_type=PROBLEM_CONTENT_TYPE
    )


def _request_id(request: Request) -> str | None:
    rid = getattr(request.state, "request_id", None)
    return rid if isinstance(rid, str) else None


async def _handle_clockify_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ClockifyError)
    if exc.status >= 500:
        log.error("request.failed", error=type(exc).__name__, detail=exc.detail, path=request.url.path)
    body = exc.to_problem(instance=request.url.path, request_id=_request_id(request))
    return problem_response(body, headers=exc.headers)


def _location(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


def validation_errors(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    """The one-line detail (the first error) and every error, as problem bodies list them."""
    errors = [
        {"location": _location(err.get("loc", ())), "message": err.get("msg", ""), "kind": err.get("type", "")}
        for err in exc.errors()
    ]
    first = errors[0] if errors else None
    return (f"{first['location']}: {first['message']}" if first else "The request is not valid"), errors


async def _handle_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    detail, errors = validation_errors(exc)
    body = ValidationFailed(detail, errors=errors).to_problem(
        instance=request.url.path, request_id=_request_id(request)
    )
    return problem_response(body)


async def _handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    title = _HTTP_TITLES.get(exc.status_code, "Error")
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail.lower() != title.lower() else None
    body = problem_body(
        status=exc.status_code,
        title=title,
        detail=detail,
        instance=request.url.path,
        request_id=_request_id(request),
    )
    return problem_response(body, headers=exc.headers)


# SQLSTATE class 22, "data exception": the database refused a value the statement carried.
_DATA_EXCEPTIONS = {
    "22021": "text contains a NUL character",  # character_not_in_repertoire
    "22P05": "text contains a NUL character (\\u0000)",  # untranslatable_character (JSONB)
    "22001": "a text is longer than the database allows",  # string_data_right_truncation
    "22003": "a number is out of range",  # numeric_value_out_of_range
    "22000": "a number is out of range or a value has the wrong form",  # asyncpg refused to encode it
}


def refused_value(exc: BaseException) -> str | None:
    """Why the database refused a value (SQLSTATE class 22), or None for any other error.

    Values reach statements from requests; a NUL character, which PostgreSQL text and JSONB
    cannot hold, can sit in any string of any body, query or path, so it is refused here
    once rather than by every field.
    """
    if not isinstance(exc, sa_exc.DBAPIError):
        return None
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if not isinstance(sqlstate, str) or not sqlstate.startswith("22"):
        return None
    return _DATA_EXCEPTIONS.get(sqlstate, "a value is malformed or out of range")


def is_database_outage(exc: BaseException) -> bool:
    """True for errors that mean "the database is unreachable", not "the query is wrong"."""
    if isinstance(exc, sa_exc.TimeoutError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
    return False


async def _handle_database_error(request: Request, exc: Exception) -> Response:
    reason = refused_value(exc)
    if reason is not None:
        log.warning("request.value_refused", error=type(exc).__name__, reason=reason, path=request.url.path)
        refused = BadRequest(f"the request holds a value that cannot be stored: {reason}")
        return problem_response(refused.to_problem(instance=request.url.path, request_id=_request_id(request)))
    if not is_database_outage(exc):
        return await _handle_unexpected(request, exc)
    # 503 tells Clockify (and load balancers) to come back: nothing was accepted.
    log.warning("request.database_unavailable", error=type(exc).__name__, path=request.url.path)
    error = ServiceUnavailable("The database is unavailable; retry later", headers={"Retry-After": "5"})
    return problem_response(
        error.to_problem(instance=request.url.path, request_id=_request_id(request)), headers=error.headers
    )


async def _handle_unexpected(request: Request, exc: Exception) -> Response:
    # The traceback goes to the log with the request id; the body says only what happened.
    log.exception("request.unhandled", error=type(exc).__name__, path=request.url.path)
    body = ClockifyError("An unexpected error occurred; quote the request id when reporting it").to_problem(
        instance=request.url.path, request_id=_request_id(request)
    )
    return problem_response(body)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ClockifyError, _handle_clockify_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_exception)
    app.add_exception_handler(sa_exc.DBAPIError, _handle_database_error)
    app.add_exception_handler(sa_exc.TimeoutError, _handle_database_error)
    app.add_exception_handler(ConnectionError, _handle_database_error)
    app.add_exception_handler(Exception, _handle_unexpected)
