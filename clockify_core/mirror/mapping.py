"""From Clockify bodies to mirror rows.

One mapping per typed kind turns a body (webhook shape or API shape; they share
field names) into the typed columns; every other kind keeps only its id and raw
body. Bodies are trusted only as far as their types: a missing or odd field maps
to NULL rather than failing the event.

A webhook body and the API's representation of the same entity map to the same
columns (tests/mirror/test_fidelity.py): empty text is NULL, a custom field value
keeps ``customFieldId``, ``name`` and ``value`` (webhooks carry no ``type``), and a
body that omits something keeps the stored value (the writer merges bodies into the
stored ``raw``). NUL characters, which PostgreSQL text and jsonb refuse, are removed
from every string (:func:`clockify_core.payloads.without_nul`). docs/schema.md states these rules for users.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache, partial
from typing import Any

import orjson

from clockify_core.catalog import TYPED_KINDS
from clockify_core.payloads import Body

_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


# isinstance(x, Mapping) goes through the ABC machinery; parsed JSON holds plain dicts, tried first.
MAPPING = (dict, Mapping)

# Column ranges: a value outside them is no real duration or amount, and would fail the write.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


def _bounded(value: float, limit: int) -> int | None:
    return int(value) if math.isfinite(value) and -limit <= value <= limit else None


def parse_duration(value: Any) -> int | None:
    """ISO-8601 duration (``PT1H30M``) or a number of seconds → whole seconds (None past 68 years)."""
    if type(value) is str:  # the API's form, first: a pull parses one per entry
        return _parse_duration_text(value)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _bounded(value, INT32_MAX)
    if not isinstance(value, str):
        return None
    return _parse_duration_text(value)


# Clockify's own form: whole hours, minutes and seconds (``PT7H6M25S``); the general pattern above has the rest.
_HOURS_MINUTES_SECONDS = re.compile(r"PT(?:(\d{1,9})H)?(?:(\d{1,9})M)?(?:(\d{1,9})S)?").fullmatch


# Bulk pulls parse a duration per time entry, and durations repeat: cache the text form. Entries
# of up to nine hours to the second take 32,400 values; a smaller cache missed about half of them.
@lru_cache(maxsize=32768)
def _parse_duration_text(value: str) -> int | None:
    if len(value) > 2:
        whole = _HOURS_MINUTES_SECONDS(value)
        if whole is not None:
            hours, minutes, seconds = whole.groups()
            total = (int(hours) * 3600 if hours else 0) + (int(minutes) * 60 if minutes else 0)
            return _bounded(total + int(seconds) if seconds else total, INT32_MAX)
    if not value or value == "P":
        return None
    match = _DURATION.match(value.strip())
    if not match:
        return None
    days, hours, minutes, seconds = (float(part) if part else 0.0 for part in match.group("d", "h", "m", "s"))
    return _bounded(days * 86400 + hours * 3600 + minutes * 60 + seconds, INT32_MAX)


_dumps = orjson.dumps


def parse_time(value: Any) -> datetime | None:
    """ISO-8601 text → an aware UTC datetime; anything else, or a moment UTC cannot hold, → None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        if len(value) == 20 and value[19] == "Z" and value[10] == "T":
            # Clockify's own yyyy-MM-ddThh:mm:ssZ, once per start and end of every entry a pull reads:
            # Python 3.11 parses the Z itself (to UTC), which halves the cost of the general path.
            return datetime.fromisoformat(value)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        # "0001-01-01T00:00:00+05:00" parses, but lies before datetime.min in UTC.
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _amount(value: Any) -> int | None:
    """Rates come as ``{"amount": 150, "currency": "USD"}``, a bare number, or null."""
    if value is None:
        return None
    if isinstance(value, MAPPING):
        value = value.get("amount")
    if type(value) is int:  # whole cents, the API's form
        return value if -INT64_MAX <= value <= INT64_MAX else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return _bounded(value, INT64_MAX)


def _currency(*values: Any) -> str | None:
    for value in values:
        if value is not None and isinstance(value, MAPPING) and isinstance(value.get("currency"), str):
            return str(value["currency"])[:8]
    return None


def _str_list(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


TIME_ENTRY_COLUMNS = (
    "user_id", "project_id", "task_id", "description", "start_at", "end_at", "duration_seconds", "billable",
    "is_locked", "type", "tag_ids", "hourly_rate", "cost_rate", "currency", "custom_fields",
)
_CUSTOM_KEYS = ("customFieldId", "name", "value")


def time_entry_values(body: Body, *, json_text: bool = False) -> tuple[Any, ...]:
    """A time entry's typed columns, in :data:`TIME_ENTRY_COLUMNS` order; with ``json_text`` the two
    JSON columns (``tag_ids``, ``custom_fields``) come as their JSON text, as a COPY record takes them.

    A tuple, not a dict: a bootstrap maps about a million of these, and the bulk writer
    puts them into COPY records as they are (:mod:`clockify_core.sync.bulk`). The helpers
    above (``_str``, ``parse_time`` ...) are inlined for the API's usual types: a call each
    was a fifth of the mapping. The results are theirs.
    """
    get = body.get
    interval = get("timeInterval")
    if isinstance(interval, MAPPING):
        at = interval.get
        start = parse_time(at("start"))
        end = parse_time(at("end"))
        value = at("duration")
        duration = _parse_duration_text(value) if type(value) is str else parse_duration(value)
        if duration is None and start and end:
            duration = _bounded((end - start).total_seconds(), INT32_MAX)
    else:
        start = end = duration = None
    tags = get("tagIds")
    if tags is None and "tagIds" not in body and isinstance(get("tags"), list):
        tag_ids = [t["id"] for t in body["tags"] if isinstance(t, Mapping) and isinstance(t.get("id"), str)]
    elif isinstance(tags, list) and tags:
        tag_ids = [item for item in tags if isinstance(item, str)]
    else:
        tag_ids = []
    custom = get("customFieldValues")
    custom_fields = [{k: v for k, v in item.items() if k in _CUSTOM_KEYS} for item in custom
                     if isinstance(item, MAPPING)] if custom else []
    user_id, project_id, task_id, description = get("userId"), get("projectId"), get("taskId"), get("description")
    billable, locked, kind = get("billable"), get("isLocked"), get("type")
    hourly, cost = get("hourlyRate"), get("costRate")
    return (
        user_id if isinstance(user_id, str) and user_id else None,
        project_id if isinstance(project_id, str) and project_id else None,
        task_id if isinstance(task_id, str) and task_id else None,
        description if isinstance(description, str) and description else None,
        start,
        end,
        duration,
        billable if isinstance(billable, bool) else None,
        locked if isinstance(locked, bool) else None,
        # Webhook bodies carry no type (docs/clockify.md#webhook-payloads): they predate break entries, so an
        # entry first seen through one is REGULAR until the API says otherwise.
        kind if isinstance(kind, str) and kind else "REGULAR",
        (_dumps(tag_ids).decode() if tag_ids else "[]") if json_text else tag_ids,
        None if hourly is None else _amount(hourly),
        None if cost is None else _amount(cost),
        None if hourly is None and cost is None else _currency(hourly, cost),
        (_dumps(custom_fields).decode() if custom_fields else "[]") if json_text else custom_fields,
    )


def _time_entry(body: Body) -> dict[str, Any]:
    return dict(zip(TIME_ENTRY_COLUMNS, time_entry_values(body), strict=True))


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
        "note": _str(body.get("note")),
        "hourly_rate": _amount(body.get("hourlyRate")),
        "cost_rate": _amount(body.get("costRate")),
        "estimate_seconds": _estimate_seconds(body.get("timeEstimate") or body.get("estimate")),
    }


def _client(body: Body) -> dict[str, Any]:
    return {
        "name": _str(body.get("name")),
        "archived": _bool(body.get("archived")),
        "email": _str(body.get("email")),
        "note": _str(body.get("note")),
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


def membership_status(body: Body) -> str | None:
    """The status of the user's workspace membership (``memberships`` of the API's user)."""
    memberships = body.get("memberships")
    for item in memberships if isinstance(memberships, list) else ():
        if isinstance(item, Mapping) and item.get("membershipType") == "WORKSPACE":
            return _str(item.get("membershipStatus"))
    return None


def with_membership_status(body: Body, workspace_id: str, status: str) -> dict[str, Any]:
    """``body`` with its workspace membership set to ``status`` (added when the body has none)."""
    memberships = [m for m in body.get("memberships") or [] if isinstance(m, Mapping)]
    if not any(m.get("membershipType") == "WORKSPACE" for m in memberships):
        memberships.append({"userId": body.get("id"), "targetId": workspace_id, "membershipType": "WORKSPACE"})
    return {**body, "memberships": [{**m, "membershipStatus": status} if m.get("membershipType") == "WORKSPACE" else m
                                    for m in memberships]}


def _user(body: Body) -> dict[str, Any]:
    settings = body.get("settings") if isinstance(body.get("settings"), Mapping) else {}
    assert isinstance(settings, Mapping)
    return {
        "name": _str(body.get("name")),
        "email": _str(body.get("email")),
        "status": membership_status(body) or _str(body.get("status")),
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
# Kinds whose typed columns also come as a tuple (column names, mapping), for bulk loads: the
# JSON columns as JSON text, the form a COPY record takes.
TYPED_VALUES: dict[str, tuple[tuple[str, ...], Callable[[Body], tuple[Any, ...]]]] = {
    "time_entry": (TIME_ENTRY_COLUMNS, partial(time_entry_values, json_text=True)),
}



def row_values(kind: str, workspace_id: str, row_id: str, body: Body) -> dict[str, Any]:
    """Columns for a mirror row of ``kind`` (typed table or ``entities``), without bookkeeping.

    ``body`` holds no NUL: it was read with :func:`clockify_core.payloads.loads_without_nul` or stored by the receiver.
    """
    values: dict[str, Any] = {"workspace_id": workspace_id, "id": row_id, "raw": dict(body)}
    if kind in TYPED_COLUMNS:
        values.update(TYPED_COLUMNS[kind](body))
    else:
        values["kind"] = kind
    return values
