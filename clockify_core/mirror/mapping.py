"""From Clockify bodies to mirror rows.

One mapping per typed kind turns a body (webhook shape or API shape; they share
field names) into the typed columns; every other kind keeps only its id and raw
body. Bodies are trusted only as far as their types: a missing or odd field maps
to NULL rather than failing the event.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from clockify_core.catalog import TYPED_KINDS

Body = Mapping[str, Any]

_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(value: Any) -> int | None:
    """ISO-8601 duration (``PT1H30M``) or a number of seconds → whole seconds."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if not isinstance(value, str):
        return None
    return _parse_duration_text(value)


# Bulk pulls parse a duration per time entry, and durations repeat: cache the text form.
@lru_cache(maxsize=16384)
def _parse_duration_text(value: str) -> int | None:
    if not value or value == "P":
        return None
    match = _DURATION.match(value.strip())
    if not match:
        return None
    days, hours, minutes, seconds = (float(part) if part else 0.0 for part in match.group("d", "h", "m", "s"))
    return int(days * 86400 + hours * 3600 + minutes * 60 + seconds)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _amount(value: Any) -> int | None:
    """Rates come as ``{"amount": 150, "currency": "USD"}``, a bare number, or null."""
    if isinstance(value, Mapping):
        value = value.get("amount")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _currency(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, Mapping) and isinstance(value.get("currency"), str):
            return str(value["currency"])[:8]
    return None


def _str_list(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _time_entry(body: Body) -> dict[str, Any]:
    interval = body.get("timeInterval") if isinstance(body.get("timeInterval"), Mapping) else {}
    assert isinstance(interval, Mapping)
    start, end = parse_time(interval.get("start")), parse_time(interval.get("end"))
    duration = parse_duration(interval.get("duration"))
    if duration is None and start and end:
        duration = int((end - start).total_seconds())
    tag_ids = _str_list(body.get("tagIds"))
    if not tag_ids and isinstance(body.get("tags"), list):
        tag_ids = [t["id"] for t in body["tags"] if isinstance(t, Mapping) and isinstance(t.get("id"), str)]
    custom = [
        {k: v for k, v in item.items() if k in ("customFieldId", "name", "value", "type")}
        for item in body.get("customFieldValues") or []
        if isinstance(item, Mapping)
    ]
    return {
        "user_id": _str(body.get("userId")),
        "project_id": _str(body.get("projectId")),
        "task_id": _str(body.get("taskId")),
        "description": body.get("description") if isinstance(body.get("description"), str) else None,
        "start_at": start,
        "end_at": end,
        "duration_seconds": duration,
        "billable": _bool(body.get("billable")),
        "is_locked": _bool(body.get("isLocked")),
        "type": _str(body.get("type")),
        "tag_ids": tag_ids,
        "hourly_rate": _amount(body.get("hourlyRate")),
        "cost_rate": _amount(body.get("costRate")),
        "currency": _currency(body.get("hourlyRate"), body.get("costRate")),
        "custom_fields": custom,
    }


def _estimate_seconds(value: Any) -> int | None:
    if isinstance(value, Mapping):
        value = value.get("estimate")
    return parse_duration(value)


def _project(body: Body) -> dict[str, Any]:
    return {
        "name": _str(body.get("name")),
        "client_id": _str(body.get("clientId")),
        "billable": _bool(body.get("billable")),
        "archived": _bool(body.get("archived")),
        "is_public": _bool(body.get("public")),
        "color": _str(body.get("color")),
        "note": body.get("note") if isinstance(body.get("note"), str) else None,
        "hourly_rate": _amount(body.get("hourlyRate")),
        "cost_rate": _amount(body.get("costRate")),
        "estimate_seconds": _estimate_seconds(body.get("timeEstimate") or body.get("estimate")),
    }


def _client(body: Body) -> dict[str, Any]:
    return {
        "name": _str(body.get("name")),
        "archived": _bool(body.get("archived")),
        "email": _str(body.get("email")),
        "note": body.get("note") if isinstance(body.get("note"), str) else None,
    }


def _tag(body: Body) -> dict[str, Any]:
    return {"name": _str(body.get("name")), "archived": _bool(body.get("archived"))}


def _task(body: Body) -> dict[str, Any]:
    assignees = _str_list(body.get("assigneeIds"))
    if not assignees and isinstance(body.get("assigneeId"), str):
        assignees = [body["assigneeId"]]
    return {
        "project_id": _str(body.get("projectId")),
        "name": _str(body.get("name")),
        "status": _str(body.get("status")),
        "assignee_ids": assignees,
        "billable": _bool(body.get("billable")),
        "hourly_rate": _amount(body.get("hourlyRate")),
        "cost_rate": _amount(body.get("costRate")),
        "estimate_seconds": _estimate_seconds(body.get("estimate")),
    }


def _user(body: Body) -> dict[str, Any]:
    settings = body.get("settings") if isinstance(body.get("settings"), Mapping) else {}
    assert isinstance(settings, Mapping)
    return {
        "name": _str(body.get("name")),
        "email": _str(body.get("email")),
        "status": _str(body.get("status")),
        "time_zone": _str(settings.get("timeZone")),
    }


TYPED_COLUMNS: dict[str, Callable[[Body], dict[str, Any]]] = {
    "time_entry": _time_entry,
    "project": _project,
    "client": _client,
    "tag": _tag,
    "task": _task,
    "user": _user,
}
assert set(TYPED_COLUMNS) == TYPED_KINDS


def _digest(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def entity_id(kind: str, body: Body, id_field: str = "id") -> str | None:
    """The id a body is stored under. Kinds without an id of their own get a stable key."""
    for field in (id_field, "id", "_id"):
        value = body.get(field)
        if isinstance(value, str) and value:
            return value
    if kind == "rate":
        modified = body.get("modifiedEntity") if isinstance(body.get("modifiedEntity"), Mapping) else {}
        assert isinstance(modified, Mapping)
        parts = [body.get("rateChangeSource"), modified.get("userId"), modified.get("targetId")]
        return ":".join(str(p) for p in parts if p) or None
    if kind == "balance":
        parts = [body.get("userId"), body.get("policyId")]
        return ":".join(str(p) for p in parts if p) or None
    if kind == "user_invitation":
        return _digest(body)
    return None


def row_values(kind: str, workspace_id: str, row_id: str, body: Body) -> dict[str, Any]:
    """Columns for a mirror row of ``kind`` (typed table or ``entities``), without bookkeeping."""
    values: dict[str, Any] = {"workspace_id": workspace_id, "id": row_id, "raw": dict(body)}
    if kind in TYPED_COLUMNS:
        values.update(TYPED_COLUMNS[kind](body))
    else:
        values["kind"] = kind
    return values
