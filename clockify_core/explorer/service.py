"""What the explorer shows: operations of the bundled spec, filtered and explained per caller."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from clockify_core.errors import ClockifyError
from clockify_core.openapi.calls import check_policy
from clockify_core.openapi.index import OpenApiIndex, Operation
from clockify_core.tiers import ServiceProfile

SCHEMA_DEPTH = 4


class OperationSummary(BaseModel):
    operation_id: str
    method: str
    path: str
    api: str
    tag: str
    summary: str
    required_scope: str | None
    deprecated: bool
    allowed: bool
    reason: str | None = None


class ParameterRead(BaseModel):
    name: str
    location: str
    required: bool
    description: str | None
    schema_: dict[str, Any] = Field(serialization_alias="schema")


class OperationDetail(OperationSummary):
    description: str | None
    parameters: list[ParameterRead]
    request_body: dict[str, Any] | None
    request_body_required: bool


def permission(operation: Operation, profile: ServiceProfile, *, is_admin: bool) -> tuple[bool, str | None]:
    try:
        check_policy(operation, profile, is_admin=is_admin)
    except ClockifyError as exc:
        return False, exc.detail
    return True, None


def summarize(operation: Operation, profile: ServiceProfile, *, is_admin: bool) -> OperationSummary:
    allowed, reason = permission(operation, profile, is_admin=is_admin)
    return OperationSummary(
        operation_id=operation.operation_id, method=operation.method, path=operation.path, api=operation.api,
        tag=operation.tag, summary=operation.summary, required_scope=operation.required_scope,
        deprecated=operation.deprecated, allowed=allowed, reason=reason,
    )


def expand(index: OpenApiIndex, node: Any, depth: int = SCHEMA_DEPTH) -> Any:
    """Inline ``$ref``s (and merge ``allOf``) to a bounded depth, so a form can be built from it."""
    if isinstance(node, list):
        return [expand(index, item, depth) for item in node]
    if not isinstance(node, Mapping):
        return node
    if "$ref" in node:
        if depth <= 0:
            return {"type": "object", "description": f"(see {str(node['$ref']).rsplit('/', 1)[-1]})"}
        return expand(index, index.resolve(str(node["$ref"])), depth - 1)
    if "allOf" in node and isinstance(node["allOf"], list):
        merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
        for part in node["allOf"]:
            sub = expand(index, part, depth)
            if isinstance(sub, Mapping):
                merged.setdefault("properties", {}).update(sub.get("properties", {}))
                merged.setdefault("required", []).extend(sub.get("required", []))
                merged.setdefault("type", sub.get("type"))
        return expand(index, merged, depth)
    return {key: expand(index, value, depth) for key, value in node.items()}


def detail(index: OpenApiIndex, operation: Operation, profile: ServiceProfile, *, is_admin: bool) -> OperationDetail:
    return OperationDetail(
        **summarize(operation, profile, is_admin=is_admin).model_dump(),
        description=operation.description,
        parameters=[
            ParameterRead(name=p.name, location=p.location, required=p.required, description=p.description,
                          schema_=expand(index, p.schema))
            for p in operation.parameters
        ],
        request_body=expand(index, operation.request_body) if operation.request_body else None,
        request_body_required=operation.request_body_required,
    )
