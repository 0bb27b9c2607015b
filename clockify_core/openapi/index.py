"""The bundled Clockify OpenAPI spec, indexed by operation id and by request.

:func:`load_spec` reads ``clockify-openapi.json`` (the official OpenAPI 3.0.1 spec,
docs/clockify.md#openapi-spec) once, on first use. :class:`OpenApiIndex` turns its 170 operations into
:class:`Operation` records and matches concrete requests against templated paths::

    index = bundled_index()
    found = index.match("GET", "/v1/workspaces/abc/projects")
    found.operation.operation_id   # "getProjects"
    found.path_params              # {"workspaceId": "abc"}

Paths are relative to the operation's API base (``{backendUrl}`` for ``api``,
``{reportsUrl}`` for ``reports``). Schemas are the spec's own objects, shared by every
caller: treat them as read-only and follow ``$ref`` with :meth:`OpenApiIndex.resolve`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit

import orjson

from clockify_core.openapi.scopes import required_scope

ApiName = Literal["api", "reports", "pto"]

SPEC_RESOURCE = "clockify-openapi.json"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
WORKSPACE_PREFIX = "/v1/workspaces/{workspaceId}/"
PAGE_SIZE_PARAMETERS = ("page-size", "pageSize")
# A workspace list may be scoped to one user and still be a plain list of workspace data.
LIST_PATH_PARAMETERS = frozenset({"workspaceId", "userId"})

_TEMPLATE = re.compile(r"\{([^{}]+)\}")


@cache
def load_spec() -> Mapping[str, Any]:
    """The bundled Clockify OpenAPI document, parsed once."""
    data = resources.files("clockify_core.openapi").joinpath(SPEC_RESOURCE).read_bytes()
    spec: dict[str, Any] = orjson.loads(data)
    return spec


@cache
def bundled_index() -> OpenApiIndex:
    """The index of the bundled spec, built once."""
    return OpenApiIndex(load_spec())


@dataclass(frozen=True, slots=True)
class Parameter:
    """One operation parameter; ``location`` is OpenAPI's ``in``."""

    name: str
    location: str
    required: bool
    schema: Mapping[str, Any] = field(repr=False, hash=False)
    description: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Operation:
    """One API operation with what callers and form builders need to know about it."""

    operation_id: str
    method: str  # upper case
    path: str  # the templated path, e.g. /v1/workspaces/{workspaceId}/projects
    api: ApiName
    tag: str
    summary: str
    description: str | None = field(repr=False)
    parameters: tuple[Parameter, ...] = field(repr=False)
    # The request body schema, often a {"$ref": ...}.
    request_body: Mapping[str, Any] | None = field(repr=False, hash=False)
    request_body_required: bool
    request_content_type: str | None
    # The schema of the 200 response, else of the first 2xx.
    response_schema: Mapping[str, Any] | None = field(repr=False, hash=False)
    required_scope: str | None
    is_workspace_list: bool
    page_size_max: int | None
    deprecated: bool

    @property
    def path_parameters(self) -> tuple[Parameter, ...]:
        return tuple(p for p in self.parameters if p.location == "path")

    @property
    def query_parameters(self) -> tuple[Parameter, ...]:
        return tuple(p for p in self.parameters if p.location == "query")

    def parameter(self, name: str, location: str | None = None) -> Parameter | None:
        for param in self.parameters:
            if param.name == name and (location is None or param.location == location):
                return param
        return None

    def format_path(self, path_params: Mapping[str, str]) -> str:
        """The concrete path with each ``{name}`` replaced by its percent-encoded value.

        Raises :class:`KeyError` naming a missing parameter and :class:`ValueError` for a
        value that would change the path's shape (see :func:`path_value_problem`).
        """

        def substitute(found: re.Match[str]) -> str:
            name = found.group(1)
            if name not in path_params or not str(path_params[name]):
                raise KeyError(name)
            value = str(path_params[name])
            if problem := path_value_problem(value):
                raise ValueError(f"path parameter {name!r} {problem}")
            return quote(value, safe="")

        return _TEMPLATE.sub(substitute, self.path)


def path_value_problem(value: str) -> str | None:
    """Why ``value`` cannot fill a path parameter, or ``None``.

    Percent-encoding keeps ``/``, ``?`` and ``#`` inside the segment, but ``.`` and ``..``
    survive it and are resolved by URL libraries and servers into the same or the parent
    path: another operation than the one that was checked.
    """
    if value in (".", ".."):
        return "must not be '.' or '..'"
    return None


@dataclass(frozen=True, slots=True)
class OperationMatch:
    operation: Operation
    path_params: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class _Route:
    segments: tuple[str | None, ...]  # literal text, or None for a parameter
    names: tuple[str | None, ...]  # parameter name at each templated position
    operation: Operation


class OpenApiIndex:
    """Operations of one OpenAPI document, by id and by (method, path)."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = spec
        operations: list[Operation] = []
        for path, item in spec.get("paths", {}).items():
            for method in HTTP_METHODS:
                if method in item:
                    operations.append(self._operation(method, path, item, item[method]))
        self.operations: tuple[Operation, ...] = tuple(operations)
        self._by_id: dict[str, Operation] = {}
        for operation in operations:
            if operation.operation_id in self._by_id:
                raise ValueError(f"duplicate operationId {operation.operation_id!r}")
            self._by_id[operation.operation_id] = operation
        self._routes = _build_routes(operations)

    def by_operation_id(self, operation_id: str) -> Operation | None:
        return self._by_id.get(operation_id)

    def match(self, method: str, path: str, *, api: ApiName | None = None) -> OperationMatch | None:
        """The operation serving ``method path`` and the values of its path parameters.

        ``path`` is relative to the API base and may carry a query string. Literal
        segments win over templated ones (``/expenses/categories`` is not an expense id).
        """
        segments = _split_path(path)
        if segments is None:
            return None
        for route in self._routes.get((method.upper(), len(segments)), ()):
            if api is not None and route.operation.api != api:
                continue
            params = _match_route(route, segments)
            if params is not None:
                return OperationMatch(route.operation, params)
        return None

    def tags(self) -> list[str]:
        """Tags that have operations, in the spec's declared order."""
        used = {operation.tag for operation in self.operations}
        declared = [tag["name"] for tag in self.spec.get("tags", []) if tag.get("name") in used]
        return declared + sorted(used - set(declared))

    def resolve(self, ref: str) -> Mapping[str, Any]:
        """The object a local ``$ref`` (``#/components/schemas/Name``) points at.

        Raises :class:`KeyError` for a dangling reference and :class:`ValueError` for a
        reference outside this document.
        """
        if not ref.startswith("#/"):
            raise ValueError(f"only local references are supported, got {ref!r}")
        node: Any = self.spec
        for token in ref[2:].split("/"):
            key = token.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or key not in node:
                raise KeyError(ref)
            node = node[key]
        if not isinstance(node, Mapping):
            raise KeyError(ref)
        return node

    def schema(self, name: str) -> Mapping[str, Any]:
        """A named schema from ``components.schemas``."""
        return self.resolve("#/components/schemas/" + name.replace("~", "~0").replace("/", "~1"))

    def deref(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        """``node`` itself, or what it points at when it is a ``$ref``."""
        ref = node.get("$ref")
        return self.resolve(ref) if isinstance(ref, str) else node

    def _operation(
        self, method: str, path: str, item: Mapping[str, Any], raw: Mapping[str, Any]
    ) -> Operation:
        tags = raw.get("tags") or ["default"]
        tag = str(tags[0])
        operation_id = str(raw.get("operationId") or f"{method}:{path}")
        parameters = self._parameters(item, raw)
        body_schema, body_type = _content_schema(raw.get("requestBody"))
        response = _success_response(raw.get("responses", {}))
        response_schema, _ = _content_schema(response)
        return Operation(
            operation_id=operation_id,
            method=method.upper(),
            path=path,
            api=_api_of(
                raw.get("servers") or item.get("servers") or self.spec.get("servers") or []
            ),
            tag=tag,
            summary=str(raw.get("summary") or ""),
            description=raw.get("description"),
            parameters=parameters,
            request_body=body_schema,
            request_body_required=bool((raw.get("requestBody") or {}).get("required", False)),
            request_content_type=body_type,
            response_schema=response_schema,
            required_scope=required_scope(tag, method, operation_id),
            is_workspace_list=self._is_workspace_list(method, path, parameters, response_schema),
            page_size_max=_page_size_max(parameters),
            deprecated=bool(raw.get("deprecated", False)),
        )

    def _parameters(self, item: Mapping[str, Any], raw: Mapping[str, Any]) -> tuple[Parameter, ...]:
        # Operation-level parameters override path-level ones with the same name and location.
        merged: dict[tuple[str, str], Parameter] = {}
        for source in (item.get("parameters", []), raw.get("parameters", [])):
            for entry in source:
                spec = self.deref(entry)
                param = Parameter(
                    name=str(spec["name"]),
                    location=str(spec["in"]),
                    required=bool(spec.get("required", spec["in"] == "path")),
                    schema=spec.get("schema", {}),
                    description=spec.get("description"),
                )
                merged[(param.name, param.location)] = param
        return tuple(merged.values())

    def _is_workspace_list(
        self,
        method: str,
        path: str,
        parameters: tuple[Parameter, ...],
        response_schema: Mapping[str, Any] | None,
    ) -> bool:
        """A safe GET listing workspace data, which a mirror can page through."""
        if method.upper() != "GET" or not path.startswith(WORKSPACE_PREFIX):
            return False
        if not set(_TEMPLATE.findall(path)) <= LIST_PATH_PARAMETERS:
            return False
        returns_array = (
            response_schema is not None and self.deref(response_schema).get("type") == "array"
        )
        query = {p.name for p in parameters if p.location == "query"}
        return returns_array or bool(query & {"page", *PAGE_SIZE_PARAMETERS})


def _api_of(servers: list[Mapping[str, Any]]) -> ApiName:
    url = str(servers[0].get("url", "")) if servers else ""
    host = urlsplit(url).netloc
    if host.startswith("reports."):
        return "reports"
    # The deprecated PTO group is served from a stray localhost:5050 in the spec (docs/clockify.md#api-hosts).
    if host.startswith("pto.") or host == "localhost:5050":
        return "pto"
    return "api"


def _success_response(responses: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if "200" in responses:
        response: Mapping[str, Any] = responses["200"]
        return response
    for code in sorted(responses):
        if code.startswith("2"):
            found: Mapping[str, Any] = responses[code]
            return found
    return None


def _content_schema(
    holder: Mapping[str, Any] | None,
) -> tuple[Mapping[str, Any] | None, str | None]:
    """The schema of a request body or response, preferring JSON, and its media type."""
    content: Mapping[str, Any] = (holder or {}).get("content") or {}
    if not content:
        return None, None
    media_type = "application/json" if "application/json" in content else next(iter(content))
    schema = content[media_type].get("schema")
    return (schema if isinstance(schema, Mapping) else None), media_type


def _page_size_max(parameters: tuple[Parameter, ...]) -> int | None:
    for param in parameters:
        if param.location == "query" and param.name in PAGE_SIZE_PARAMETERS:
            maximum = param.schema.get("maximum")
            if isinstance(maximum, int | float) and not isinstance(maximum, bool):
                return int(maximum)
    return None


def _build_routes(operations: list[Operation]) -> dict[tuple[str, int], list[_Route]]:
    routes: dict[tuple[str, int], list[_Route]] = {}
    for operation in operations:
        parts = operation.path.strip("/").split("/")
        names = tuple(m.group(1) if (m := _TEMPLATE.fullmatch(part)) else None for part in parts)
        segments = tuple(
            None if name is not None else part for part, name in zip(parts, names, strict=True)
        )
        routes.setdefault((operation.method, len(parts)), []).append(
            _Route(segments, names, operation)
        )
    for candidates in routes.values():
        # Literal segments sort before templated ones, position by position.
        candidates.sort(key=lambda route: tuple(segment is None for segment in route.segments))
    return routes


def _split_path(path: str) -> list[str] | None:
    path = path.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        return None
    parts = path.strip("/").split("/")
    return parts if all(parts) else None


def _match_route(route: _Route, segments: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for expected, name, actual in zip(route.segments, route.names, segments, strict=True):
        if expected is not None:
            if expected != actual:
                return None
        elif name is not None:
            params[name] = unquote(actual)
    return params
