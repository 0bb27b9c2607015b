"""The bundled Clockify OpenAPI spec: operations, request matching and required scopes."""

from clockify_core.openapi.index import (
    ApiName,
    OpenApiIndex,
    Operation,
    OperationMatch,
    Parameter,
    bundled_index,
    load_spec,
)
from clockify_core.openapi.scopes import SCOPES, required_scope

__all__ = [
    "SCOPES",
    "ApiName",
    "OpenApiIndex",
    "Operation",
    "OperationMatch",
    "Parameter",
    "bundled_index",
    "load_spec",
    "required_scope",
]
