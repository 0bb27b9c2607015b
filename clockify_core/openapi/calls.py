"""Calling a Clockify operation by its operationId: checked, scoped, timed, logged.

The API explorer and flow actions both go through here, so the rules are the same:
the operation must exist in the bundled spec; the tier decides which methods and
scopes are allowed; writes need a workspace admin unless the caller says otherwise;
``workspaceId`` is always the caller's own workspace; only declared parameters pass.

:func:`prepare_call` also checks values against the spec: each path and query value
against its parameter's schema (type, enum, bounds, pattern, and the cheap formats:
``int32``/``int64`` ranges, ``date``, ``date-time``), after reading it the way it travels
(text: ``"5"`` is an integer, ``"true"`` a boolean, ``"a,b"`` an array), and a JSON body
against the operation's ``requestBody`` schema. The spec is OpenAPI 3.0, so schemas are
translated to JSON Schema draft 4 first: ``$ref`` resolved within the spec, ``nullable``
honoured, and the spec's enums generated as an object with a single string ``oneOf`` read
as that string enum. The spec marks nothing nullable although Clockify sends and takes ``null`` for
optional fields, so ``null`` passes for a property that is not ``required``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from typing import Any

import httpx
import orjson
from jsonschema import Draft4Validator, FormatChecker, ValidationError
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT4
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core.client import WorkspaceApi
from clockify_core.errors import (
    Forbidden,
    MethodNotAllowedForTier,
    NotFound,
    ValidationFailed,
    WorkspaceMismatch,
)
from clockify_core.openapi.index import (
    OpenApiIndex,
    Operation,
    Parameter,
    bundled_index,
    path_value_problem,
)
from clockify_core.openapi.models import ApiCall
from clockify_core.tiers import ServiceProfile

MAX_RESPONSE_BYTES = 1024 * 1024
# Response headers worth showing; the rest (cookies, tracing) stay out of the UI.
SHOWN_HEADERS = ("content-type", "last-page", "retry-after", "x-ratelimit-remaining", "location")
_SCALARS = (str, int, float, bool)
SPEC_URI = "urn:clockify-openapi"
MAX_BODY_DEPTH = 64  # far beyond any Clockify body; keeps schema validation off deep recursion
MAX_ERRORS = 20
_INTEGER_TEXT = re.compile(r"[+-]?\d{1,20}")
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


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


# Schemas ---------------------------------------------------------------------------------------

def json_schema(node: Any) -> Any:
    """An OpenAPI 3.0 Schema Object as JSON Schema draft 4 (see the module docstring)."""
    if not isinstance(node, Mapping):
        return node
    one_of = node.get("oneOf")
    if node.get("type") == "object" and isinstance(one_of, list) and len(one_of) == 1 \
            and isinstance(one_of[0], Mapping) and one_of[0].get("type") == "string":
        # The spec's enums (TaxType, TaskStatus, ...) come as an object whose one alternative
        # is the string enum; Clockify sends and takes the string (docs/simulator.md).
        return json_schema({**one_of[0], **({"nullable": True} if node.get("nullable") is True else {})})
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            out[key] = SPEC_URI + value if value.startswith("#/") else value
        elif key == "properties" and isinstance(value, Mapping):
            required = set(node.get("required") or ())
            out[key] = {name: json_schema(sub) if name in required else _or_null(json_schema(sub))
                        for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, Mapping):
            out[key] = json_schema(value)
        elif key in ("allOf", "anyOf", "oneOf") and isinstance(value, list):
            out[key] = [json_schema(sub) for sub in value]
        else:
            out[key] = value
    return _or_null(out) if node.get("nullable") is True else out


def _or_null(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    if isinstance(kind, str):
        widened = {**schema, "type": [kind, "null"]}
        if isinstance(schema.get("enum"), list) and None not in schema["enum"]:
            widened["enum"] = [*schema["enum"], None]
        return widened
    if isinstance(kind, list):
        return schema if "null" in kind else {**schema, "type": [*kind, "null"]}
    return {"anyOf": [{"type": "null"}, schema]}


def _int_in_range(name: str) -> Callable[[object], bool]:
    low, high = _INT_RANGES[name]
    return lambda value: not isinstance(value, int) or isinstance(value, bool) or low <= value <= high


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if "t" not in value.lower():
        raise ValueError("a date-time needs a time, e.g. 2025-01-31T08:00:00Z")
    datetime.fromisoformat(value)
    return True


def _date(value: object) -> bool:
    if isinstance(value, str):
        date.fromisoformat(value)
    return True


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    for name in _INT_RANGES:
        checker.checks(name)(_int_in_range(name))
    checker.checks("date-time", raises=ValueError)(_date_time)
    checker.checks("date", raises=ValueError)(_date)
    return checker


class SchemaChecker:
    """Validators for the parameters and bodies of one spec's operations, built on first use."""

    def __init__(self, index: OpenApiIndex) -> None:
        self.index = index
        components = (index.spec.get("components") or {}).get("schemas") or {}
        document = {"components": {"schemas": {name: json_schema(s) for name, s in components.items()}}}
        self._registry: Registry[Any] = Registry().with_resource(SPEC_URI, DRAFT4.create_resource(document))
        self._formats = _format_checker()
        self._validators: dict[tuple[str, str, str], Draft4Validator] = {}

    def validator(self, operation: Operation, where: str, name: str, schema: Mapping[str, Any]) -> Draft4Validator:
        key = (operation.operation_id, where, name)
        found = self._validators.get(key)
        if found is None:
            found = Draft4Validator(json_schema(schema), registry=self._registry, format_checker=self._formats)
            self._validators[key] = found
        return found

    def resolved(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        try:
            return self.index.deref(schema)
        except (KeyError, ValueError):
            return schema


@cache
def schema_checker(index: OpenApiIndex) -> SchemaChecker:
    return SchemaChecker(index)


def _schema_errors(validator: Draft4Validator, value: Any, location: str) -> list[dict[str, str]]:
    errors: list[dict[str, str]] = []
    try:
        for error in _first(validator.iter_errors(value)):
            errors.append({"location": _error_location(location, error), "message": error.message[:300],
                           "kind": "schema"})
    except Unresolvable:
        return []  # a reference the spec does not define: nothing to check against
    return errors


def _first(errors: Iterator[ValidationError]) -> list[ValidationError]:
    found: list[ValidationError] = []
    for error in errors:
        found.extend(_unwrapped(error))
        if len(found) >= MAX_ERRORS:
            break
    return sorted(found[:MAX_ERRORS], key=lambda e: [str(p) for p in e.absolute_path])


_NULL = {"type": "null"}


def _unwrapped(error: ValidationError) -> list[ValidationError]:
    """A value that failed ``anyOf: [null, X]`` (see :func:`_or_null`) failed X: report X's errors,
    which name the field inside, rather than "not valid under any of the given schemas"."""
    if error.validator != "anyOf" or _NULL not in error.validator_value or not error.context:
        return [error]
    inner = [e for e in error.context if error.validator_value[e.schema_path[0]] != _NULL]
    return [found for e in inner for found in _unwrapped(e)] or [error]


def _error_location(prefix: str, error: ValidationError) -> str:
    parts = [prefix, *(str(p) for p in error.absolute_path)]
    if error.validator == "required" and isinstance(error.instance, Mapping):
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            parts.append(str(missing[0]))
    return ".".join(parts)


def _as_sent(value: Any, schema: Mapping[str, Any], checker: SchemaChecker) -> Any:
    """A parameter value read as its schema's type, the way it travels as text."""
    kind = schema.get("type")
    if kind == "array":
        items = checker.resolved(schema.get("items") or {})
        values = value.split(",") if isinstance(value, str) else value
        return [_as_sent(v, items, checker) for v in values] if isinstance(values, list) else value
    if isinstance(value, list):
        return value
    if kind == "integer":
        if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind == "number" and isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    elif kind == "boolean" and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    elif kind == "string" and not isinstance(value, str):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return value


def _parameter_errors(
    operation: Operation, param: Parameter, value: Any, where: str, checker: SchemaChecker
) -> list[dict[str, str]]:
    schema = checker.resolved(param.schema)
    if schema.get("type") == "object":
        return []  # exploded objects (deepObject) are passed as given
    validator = checker.validator(operation, where, param.name, schema)
    return _schema_errors(validator, _as_sent(value, schema, checker), f"{where}.{param.name}")


def _too_deep(value: Any, limit: int = MAX_BODY_DEPTH) -> bool:
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, Mapping):
            stack.extend((item, depth + 1) for item in node.values())
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
    return False


def _body_errors(operation: Operation, body: Any, checker: SchemaChecker) -> list[dict[str, str]]:
    if _too_deep(body):
        return [{"location": "body", "message": f"nested deeper than {MAX_BODY_DEPTH} levels", "kind": "too_deep"}]
    if operation.request_body is None or "json" not in (operation.request_content_type or ""):
        return []  # the explorer sends JSON; other media types are Clockify's to judge
    validator = checker.validator(operation, "body", "", operation.request_body)
    return _schema_errors(validator, body, "body")


def prepare_call(
    operation: Operation,
    *,
    workspace_id: str,
    path_params: Mapping[str, Any] | None = None,
    query: Mapping[str, Any] | None = None,
    body: Any = None,
    index: OpenApiIndex | None = None,
) -> PreparedCall:
    """Validate parameters and body against the spec (``index``, the bundled one by default);
    a ValidationFailed's ``errors`` name each bad location (``query.page-size``, ``body.start``)."""
    checker = schema_checker(index or bundled_index())
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
        elif param.name != "workspaceId":
            errors.extend(_parameter_errors(operation, param, value, "pathParams", checker))
    declared_query = {p.name: p for p in operation.query_parameters}
    for name, value in query.items():
        if name not in declared_query:
            errors.append({"location": f"query.{name}", "message": "not a query parameter of this operation"})
        elif not _scalar_or_list(value):
            errors.append({"location": f"query.{name}", "message": "must be a string, number, boolean or a list of them"})
        else:
            errors.extend(_parameter_errors(operation, declared_query[name], value, "query", checker))
    for name, param in declared_query.items():
        if param.required and name not in query:
            errors.append({"location": f"query.{name}", "message": "required"})
    if body is not None and operation.request_body is None:
        errors.append({"location": "body", "message": "this operation takes no body"})
    elif body is not None:
        errors.extend(_body_errors(operation, body, checker))
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


async def execute(api: WorkspaceApi, call: PreparedCall, *, max_wait: float | None = None) -> CallResult:
    """Send the call; Clockify's answer comes back whatever its status (the caller shows it).

    Raises ``RateLimited`` when the rate limiter would make it wait more than ``max_wait``
    seconds, and ``ClockifyApiError`` when no answer came after the retries."""
    started = time.perf_counter()
    response = await api.request(
        call.method, call.path, api=call.operation.api, params=call.query or None, json=call.body,
        # A POST that only reads (reports, searches) may be retried like a GET.
        idempotent=True if call.operation.required_scope and call.operation.required_scope.endswith("_READ") else None,
        max_wait=max_wait,
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
