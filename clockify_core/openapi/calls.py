"""Calling a Clockify operation by its operationId: checked, scoped, timed, logged.

The API explorer and flow actions both go through here, so the rules are the same:
the operation must exist in the bundled spec; the tier decides which methods and
scopes are allowed; writes need a workspace admin unless the caller says otherwise;
``workspaceId`` is always the caller's own workspace; only declared parameters pass.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core.client import WorkspaceApi
from clockify_core.errors import (
    Forbidden,
    MethodNotAllowedForTier,
    NotFound,
    ValidationFailed,
    WorkspaceMismatch,
)
from clockify_core.explorer.models import ApiCall
from clockify_core.openapi.index import OpenApiIndex, Operation, path_value_problem
from clockify_core.tiers import ServiceProfile

MAX_RESPONSE_BYTES = 1024 * 1024
# Response headers worth showing; the rest (cookies, tracing) stay out of the UI.
SHOWN_HEADERS = ("content-type", "last-page", "retry-after", "x-ratelimit-remaining", "location")
_SCALARS = (str, int, float, bool)


@dataclass(frozen=True)
class PreparedCall:
    operation: Operation
    path: str
    query: dict[str, Any]
    body: Any = None

    @property
    def method(self) -> str:
        return self.operation.method


@dataclass(frozen=True)
class CallResult:
    status: int
    headers: dict[str, str]
    body: Any
    duration_ms: int
    truncated: bool = False
    errors: list[str] = field(default_factory=list)


def find_operation(index: OpenApiIndex, operation_id: str) -> Operation:
    operation = index.by_operation_id(operation_id)
    if operation is None:
        raise NotFound(f"no Clockify operation {operation_id!r} in the API specification")
    return operation


def check_policy(operation: Operation, profile: ServiceProfile, *, is_admin: bool, writes_need_admin: bool = True) -> None:
    """Refuse what the tier or the caller's role does not allow."""
    if not profile.allows_method(operation.method):
        raise MethodNotAllowedForTier(f"{profile.title} allows only {', '.join(sorted(profile.explorer_methods))} calls")
    if not profile.allows_scope(operation.required_scope):
        scope = operation.required_scope or "an unmapped scope"
        raise MethodNotAllowedForTier(f"{operation.operation_id} needs {scope}, which {profile.title} does not request")
    if operation.method != "GET" and writes_need_admin and not is_admin:
        raise Forbidden("only workspace owners and admins may call operations that change data")


def _scalar_or_list(value: Any) -> bool:
    return isinstance(value, _SCALARS) or (isinstance(value, list) and all(isinstance(v, _SCALARS) for v in value))


def prepare_call(
    operation: Operation,
    *,
    workspace_id: str,
    path_params: Mapping[str, Any] | None = None,
    query: Mapping[str, Any] | None = None,
    body: Any = None,
) -> PreparedCall:
    """Validate parameters against the spec; ``errors`` name each bad location."""
    path_params = dict(path_params or {})
    query = dict(query or {})
    errors: list[dict[str, str]] = []
    given_ws = path_params.get("workspaceId")
    if given_ws not in (None, "", workspace_id):
        raise WorkspaceMismatch("calls are limited to your own workspace")
    declared_path = {p.name for p in operation.path_parameters}
    if "workspaceId" in declared_path:
        path_params["workspaceId"] = workspace_id
    for name in sorted(set(path_params) - declared_path):
        errors.append({"location": f"pathParams.{name}", "message": "not a path parameter of this operation"})
    for param in operation.path_parameters:
        value = path_params.get(param.name)
        if value is None or str(value) == "":
            errors.append({"location": f"pathParams.{param.name}", "message": "required"})
        elif not isinstance(value, str | int):
            errors.append({"location": f"pathParams.{param.name}", "message": "must be a string"})
        elif problem := path_value_problem(str(value)):
            errors.append({"location": f"pathParams.{param.name}", "message": problem})
    declared_query = {p.name: p for p in operation.query_parameters}
    for name, value in query.items():
        if name not in declared_query:
            errors.append({"location": f"query.{name}", "message": "not a query parameter of this operation"})
        elif not _scalar_or_list(value):
            errors.append({"location": f"query.{name}", "message": "must be a string, number, boolean or a list of them"})
    for name, param in declared_query.items():
        if param.required and name not in query:
            errors.append({"location": f"query.{name}", "message": "required"})
    if body is not None and operation.request_body is None:
        errors.append({"location": "body", "message": "this operation takes no body"})
    if body is None and operation.request_body_required:
        errors.append({"location": "body", "message": "required"})
    if errors:
        raise ValidationFailed(f"{errors[0]['location']}: {errors[0]['message']}", errors=errors)
    path = operation.format_path({k: str(v) for k, v in path_params.items()})
    clean_query = {k: (v if not isinstance(v, bool) else str(v).lower()) for k, v in query.items()}
    return PreparedCall(operation=operation, path=path, query=clean_query, body=body)


def _decode(response: httpx.Response) -> tuple[Any, bool]:
    raw = response.content
    truncated = len(raw) > MAX_RESPONSE_BYTES
    raw = raw[:MAX_RESPONSE_BYTES]
    if not truncated and "json" in response.headers.get("content-type", "") and raw:
        try:
            return orjson.loads(raw), False
        except orjson.JSONDecodeError:
            pass
    return raw.decode("utf-8", errors="replace"), truncated


async def execute(api: WorkspaceApi, call: PreparedCall) -> CallResult:
    """Send the call; Clockify's answer comes back whatever its status (the caller shows it)."""
    started = time.perf_counter()
    response = await api.request(
        call.method, call.path, api=call.operation.api, params=call.query or None, json=call.body,
        # A POST that only reads (reports, searches) may be retried like a GET.
        idempotent=True if call.operation.required_scope and call.operation.required_scope.endswith("_READ") else None,
    )
    duration_ms = int((time.perf_counter() - started) * 1000)
    body, truncated = _decode(response)
    headers = {k: v for k, v in response.headers.items() if k.lower() in SHOWN_HEADERS}
    return CallResult(status=response.status_code, headers=headers, body=body, duration_ms=duration_ms, truncated=truncated)


def record(
    session: AsyncSession,
    *,
    workspace_id: str,
    user_id: str | None,
    source: str,
    call: PreparedCall,
    status: int | None,
    duration_ms: int | None,
    error: str | None = None,
) -> ApiCall:
    row = ApiCall(
        workspace_id=workspace_id, user_id=user_id, source=source, operation_id=call.operation.operation_id,
        method=call.method, path=call.path[:2000], status=status, duration_ms=duration_ms,
        error=error[:1000] if error else None,
    )
    session.add(row)
    return row
