"""The kit's errors as HTTP answers: RFC 9457 problem+json for every failure of a request.

``install_error_handlers`` registers the one handler that renders a
:class:`~clockify_core.errors.ClockifyError`, the request-validation handler, the handler
for Starlette's HTTP errors, the database handler (a refused value is 400, an outage 503)
and the catch-all for unexpected exceptions. The error tree itself is framework-free
(``clockify_core.errors``); this module is where it meets FastAPI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from clockify_core.db.failures import is_database_outage, refused_value
from clockify_core.errors import (
    PROBLEM_CONTENT_TYPE,
    BadRequest,
    ClockifyError,
    ServiceUnavailable,
    ValidationFailed,
    problem_body,
)

# The logger keeps the name it had before rendering moved out of ``clockify_core.errors``,
# so log lines (and whatever filters on them) are unchanged.
log = structlog.get_logger("clockify_core.errors")


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
