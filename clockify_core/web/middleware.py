"""Pure ASGI middleware: request id, access metrics and log, and the last-resort 500 problem.

Pure ASGI rather than ``BaseHTTPMiddleware``: it adds no task per request and
does not buffer bodies, which matters on the webhook hot path.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clockify_core.errors import ClockifyError
from clockify_core.observability.logging import redact_query
from clockify_core.observability.metrics import Metrics

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
log = structlog.get_logger("clockify_core.http")
_MAX_CACHED_CHILDREN = 1000
# With ``access_log="errors"``, a request this slow is logged whatever its status.
SLOW_REQUEST_SECONDS = 1.0


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    # Unmatched paths share one label so scanners cannot explode the series count.
    return str(path) if path else "<unmatched>"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: str = "errors") -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        # Labelled children by (route, method, status): ``labels()`` takes a lock and builds
        # keys on every call, a visible cost on the webhook route.
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def _record(self, route: str, method: str, status: str, elapsed: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (self.metrics.http_requests.labels(route, method, status),
                        self.metrics.http_duration.labels(route, method))
            if len(self._children) < _MAX_CACHED_CHILDREN:
                self._children[key] = children
        children[0].inc()
        children[1].observe(elapsed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # 32 random hex digits, the form of uuid4().hex without building a UUID (a third of the cost).
        request_id = _incoming_request_id(scope) or os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status_holder = {"status": 500, "started": False}
        header = (b"x-request-id", request_id.encode())

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            if status_holder["started"]:
                raise
            log.exception("request.unhandled", error=type(exc).__name__, path=scope.get("path"))
            await _send_problem_500(send_wrapper, scope, request_id)
        finally:
            elapsed = time.perf_counter() - started
            route, method, status = _route_template(scope), scope.get("method", ""), int(status_holder["status"])
            self._record(route, method, str(status), elapsed)
            if self.access_log == "all" or (
                self.access_log == "errors" and (status >= 400 or elapsed >= SLOW_REQUEST_SECONDS)
            ):
                # The query apart from the path, with its secrets masked: the sidebar sends
                # ?auth_token=, and scanners send anything.
                query = scope.get("query_string") or b""
                log.info("http.request", method=method, path=scope.get("path"), route=route, status=status,
                         duration_ms=round(elapsed * 1000, 2), **({"query": redact_query(query)} if query else {}))
            structlog.contextvars.unbind_contextvars("request_id")


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _SAFE_REQUEST_ID.match(text) else None
    return None


async def _send_problem_500(send: Any, scope: Scope, request_id: str) -> None:
    error = ClockifyError("An unexpected error occurred; quote the request id when reporting it")
    body = orjson.dumps(error.to_problem(instance=scope.get("path"), request_id=request_id))
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
