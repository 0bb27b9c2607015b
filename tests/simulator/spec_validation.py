"""OpenAPI 3.0 response schemas as JSON Schema, with the spec's known defects corrected in one place.

Each correction is listed in docs/simulator.md ("Where the spec is wrong"):
* enums generated as ``type: object`` + ``oneOf: [string enum]`` (TaskStatus, AccountStatus, ...) are strings;
* ``entities/updated|created`` declare ``items: {type: string, oneOf: [objects]}``; the items are objects;
* fields Clockify returns as ``null`` (``NULLABLE``) and values typed ``object`` that hold scalars (``ANY_VALUE``).

Two rules are enforced rather than relaxed: a property the spec marks ``writeOnly`` must not
appear in a response, and a ``date-time`` must be an RFC 3339 date-time (four-digit year).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SPEC_PATH = Path(__file__).parents[2] / "clockify_core/openapi/clockify-openapi.json"
NULLABLE = {"projectId", "taskId", "kioskId", "hourlyRate", "costRate", "end", "duration", "budgetEstimate",
            "resetOption", "totalAmount", "clientId", "clientName", "projectName", "projectColor", "taskName",
            "approvalRequestId", "lockTimeEntries", "userId", "userName", "userEmail", "estimate", "timeEstimate",
            "automaticLock", "lockTimeZone"}
ANY_VALUE = {"value", "workspaceDefaultValue"}
# Clockify returns these as lists although the spec types them as one enum value.
LISTS = {"features", "adminOnlyPages"}
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # the type keyword judges non-strings
    if not _DATE_TIME.match(value):
        return False
    datetime.fromisoformat(value.replace("Z", "+00:00"))  # a month 13 raises, and fails the check
    return True


def _fix(node: Any, name: str | None = None) -> Any:
    if isinstance(node, list):
        return [_fix(x) for x in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    one_of = node.get("oneOf")
    if node.get("type") == "object" and isinstance(one_of, list) and len(one_of) == 1 and one_of[0].get("type") == "string":
        node = {"type": "string", "enum": one_of[0].get("enum")}
    elif node.get("type") == "string" and isinstance(one_of, list):
        node.pop("type")
        node["oneOf"] = [{"anyOf": one_of}]
    if node.get("nullable"):
        node.pop("nullable")
        if "type" in node:
            node["type"] = [node["type"], "null"]
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {k: _property(k, v) for k, v in value.items()}
        elif key in ("description", "example") or (key == "format" and value != "date-time"):
            continue
        else:
            out[key] = _fix(value)
    return out


def _property(name: str, schema: dict[str, Any]) -> Any:
    if schema.get("writeOnly"):
        return {"not": {}}  # requests may send it; a response must not
    if name in ANY_VALUE:
        return {}
    if name in LISTS:
        return {"type": "array", "items": _fix(schema, name)}
    fixed = _fix(schema, name)
    if name in NULLABLE:
        return {"anyOf": [fixed, {"type": "null"}]}
    return fixed


@cache
def spec() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    return data


@cache
def components() -> dict[str, Any]:
    return {"schemas": {k: _fix(v) for k, v in spec()["components"]["schemas"].items()}}


def response_schema(path: str, method: str, status: int) -> dict[str, Any] | None:
    op = spec()["paths"][path][method.lower()]
    response = op["responses"].get(str(status))
    if response is None:
        raise AssertionError(f"{method} {path} answered {status}, which the spec does not list")
    content = response.get("content") or {}
    for media in content.values():
        return {**_fix(media["schema"]), "components": components()}
    return None


def operation(path: str, method: str) -> str:
    return str(spec()["paths"][path][method.lower()]["operationId"])


def validate(path: str, method: str, status: int, body: Any) -> None:
    schema = response_schema(path, method, status)
    if schema is not None:
        jsonschema.Draft7Validator(schema, format_checker=FORMATS).validate(body)
