"""Errors the framework raises, in Clockify's shape: ``message`` and ``code`` beside the problem fields.

The simulator's own errors carry Clockify's ``{message, code}`` (docs/clockify.md#errors);
these handlers give the same shape to what FastAPI and Starlette refuse before a handler
runs: a query parameter of the wrong type (``page=abc``), a missing JSON body, an unknown
path or method. Malformed input is a 400, as Clockify answers it, not FastAPI's 422.
"""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from clockify_core.errors import BadRequest, problem_body
from clockify_core.web.problems import problem_response, validation_errors

# Clockify's code for a request it cannot read; the simulator's handlers use it too (ops.py).
INVALID_REQUEST_CODE = 501


async def _invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    detail, errors = validation_errors(exc)
    error = BadRequest(detail, errors=errors, message=detail, code=INVALID_REQUEST_CODE)
    rid = getattr(request.state, "request_id", None)
    return problem_response(error.to_problem(instance=request.url.path, request_id=rid if isinstance(rid, str) else None))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    title = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail.lower() != title.lower() else None
    message = f"No endpoint {request.method} {request.url.path}" if exc.status_code in (404, 405) else (detail or title)
    body = problem_body(status=exc.status_code, title=title, detail=detail, instance=request.url.path,
                        message=message, code=exc.status_code)
    return problem_response(body, headers=exc.headers)


def install_clockify_error_shape(app: FastAPI) -> None:
    """Replace the kit's handlers for framework errors; call after ``install_error_handlers``."""
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
