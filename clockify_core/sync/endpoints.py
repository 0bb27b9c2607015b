"""Which list endpoints a workspace's mirror pulls, chosen from the OpenAPI index.

An endpoint is pulled when it is a safe GET listing workspace data
(``Operation.is_workspace_list``), the manifest's scopes allow it
(``ServiceProfile.allows_scope``), it needs no parameter we cannot fill (a user id, a
date range), and the settings do not exclude it. Typed kinds (projects, users...) go
to their tables; every other kind is kept in ``entities`` under the name below.
Time entries have their own path (:mod:`clockify_core.sync.timeentries`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from clockify_core.client import ApiKind
from clockify_core.config import SyncConfig
from clockify_core.openapi import OpenApiIndex, Operation, bundled_index
from clockify_core.tiers import ServiceProfile

# operationId -> mirror kind; anything else is named after its path (see `kind_for`).
KIND_BY_OPERATION: Mapping[str, str] = {
    "getUsersOfWorkspace": "user",
    "getClients": "client",
    "getProjects": "project",
    "getTags": "tag",
    "getTasks": "task",
    "getUserGroups": "user_group",
    "ofWorkspace": "custom_field",
    "getExpenses": "expense",
    "getCategories": "expense_category",
    "getInvoices": "invoice",
    "getApprovalRequests": "approval_request",
    "getAllAssignments": "assignment",
    "findPoliciesForWorkspace": "time_off_policy",
    "getHolidays": "holiday",
    "getSharedReportsV1": "shared_report",
    "getWorkspaceOfUser": "workspace",
}

# Pulled another way (time entries and the change feed) or never worth a bulk pull.
EXCLUDED_OPERATIONS = frozenset({
    "getTimeEntries", "getInProgressTimeEntries", "getCreatedEntityInfo", "getUpdatedEntityInfo",
    "getDeletedEntityInfo", "getHolidaysInPeriod",
})

# Query parameters that widen a listing to everything the mirror should hold.
EXTRA_PARAMS: Mapping[str, Mapping[str, Any]] = {
    "getUsersOfWorkspace": {"status": "ALL"},
}

# Listed first: tasks are read per project, and time entries per user.
ORDER = ("user", "project", "client", "tag", "custom_field", "user_group")

TASKS_OPERATION = "getTasks"
WORKSPACE_OPERATION = "getWorkspaceOfUser"
_SIZE_PARAMS = ("page-size", "pageSize")
_PAGE_PARAM = "page"


@dataclass(frozen=True, slots=True)
class Endpoint:
    kind: str
    operation_id: str
    path: str  # templated: {workspaceId} (and {projectId} for tasks)
    api: ApiKind
    scope: str | None
    heavy: bool
    page_size: int | None  # None: one GET returns everything
    size_param: str = "page-size"
    params: Mapping[str, Any] = field(default_factory=dict)
    items_path: tuple[str, ...] = ()  # where the list sits in an object response

    def url(self, workspace_id: str, project_id: str | None = None) -> str:
        path = self.path.replace("{workspaceId}", quote(workspace_id, safe=""))
        return path.replace("{projectId}", quote(project_id, safe="")) if project_id is not None else path

    @property
    def per_project(self) -> bool:
        return "{projectId}" in self.path


def kind_for(operation: Operation) -> str:
    known = KIND_BY_OPERATION.get(operation.operation_id)
    if known:
        return known
    last = [part for part in operation.path.split("/") if part and not part.startswith("{")][-1]
    name = re.sub(r"[^a-z0-9]+", "_", last.lower()).strip("_")
    return name[:-1] if name.endswith("s") and not name.endswith("ss") else name


def items_path(index: OpenApiIndex, operation: Operation) -> tuple[str, ...] | None:
    """Where the list of items is in the response: () for a bare array, else the keys to it.

    Object responses are searched for the array property named like the resource
    (``expenses.expenses``, ``invoices``), then any array of objects that is not a total.
    """
    if operation.response_schema is None:
        return None
    resource = [p for p in operation.path.split("/") if p and not p.startswith("{")][-1].replace("-", "")
    path: list[str] = []
    schema = index.deref(operation.response_schema)
    for _ in range(3):
        if schema.get("type") == "array":
            return tuple(path)
        props: Mapping[str, Any] = schema.get("properties") or {}
        candidates = sorted(
            (name for name in props if "total" not in name.lower()),
            key=lambda name: (name.lower() not in resource.lower() and resource.lower() not in name.lower(), name),
        )
        for name in candidates:
            child = index.deref(props[name])
            if child.get("type") == "array" or child.get("properties"):
                path.append(name)
                schema = child
                break
        else:
            return None
    return None


def _params(operation: Operation) -> dict[str, Any] | None:
    """Required query parameters filled from their defaults; None when one has no default."""
    params: dict[str, Any] = {}
    for param in operation.query_parameters:
        if param.required and param.name not in (_PAGE_PARAM, *_SIZE_PARAMS):
            if "default" not in param.schema:
                return None
            params[param.name] = param.schema["default"]
    params.update(EXTRA_PARAMS.get(operation.operation_id, {}))
    return params


def _endpoint(index: OpenApiIndex, operation: Operation, config: SyncConfig) -> Endpoint | None:
    params = _params(operation)
    path_items = items_path(index, operation)
    if params is None or path_items is None:
        return None
    size_param = next((p.name for p in operation.query_parameters if p.name in _SIZE_PARAMS), None)
    page_size = None
    if size_param is not None:
        page_size = min(config.page_size, operation.page_size_max or config.page_size)
    return Endpoint(
        kind=kind_for(operation), operation_id=operation.operation_id, path=operation.path, api=operation.api,
        scope=operation.required_scope, heavy=operation.operation_id in config.heavy_operations,
        page_size=page_size, size_param=size_param or "page-size", params=params, items_path=path_items,
    )


def reference_endpoints(
    profile: ServiceProfile, config: SyncConfig, index: OpenApiIndex | None = None
) -> list[Endpoint]:
    """The list endpoints bootstrap and reference refreshes pull, in dependency order."""
    index = index or bundled_index()
    chosen: dict[str, Endpoint] = {}
    for operation in index.operations:
        oid = operation.operation_id
        if (
            not operation.is_workspace_list
            or operation.deprecated
            or oid in EXCLUDED_OPERATIONS
            or oid in config.skip_operations
            or {p.name for p in operation.path_parameters} != {"workspaceId"}
            or not profile.allows_scope(operation.required_scope)
            or (not config.heavy_endpoints and oid in config.heavy_operations)
        ):
            continue
        endpoint = _endpoint(index, operation, config)
        if endpoint is not None and endpoint.kind not in chosen:
            chosen[endpoint.kind] = endpoint
    tasks = index.by_operation_id(TASKS_OPERATION)
    if tasks is not None and "project" in chosen and profile.allows_scope(tasks.required_scope) \
            and TASKS_OPERATION not in config.skip_operations:
        endpoint = _endpoint(index, tasks, config)
        if endpoint is not None:
            chosen["task"] = endpoint
    rank = {kind: n for n, kind in enumerate(ORDER)}
    return sorted(chosen.values(), key=lambda e: (rank.get(e.kind, len(ORDER)), e.per_project, e.kind))


def workspace_endpoint(profile: ServiceProfile, index: OpenApiIndex | None = None) -> Operation | None:
    """The workspace's own record (plan, settings), when the scopes allow reading it."""
    operation = (index or bundled_index()).by_operation_id(WORKSPACE_OPERATION)
    if operation is None or not profile.allows_scope(operation.required_scope):
        return None
    return operation
