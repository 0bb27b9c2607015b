"""Detailed-report rows in the shape of the time-entry API (``TimeEntryWithRatesDtoV1``).

The report (``POST {reportsUrl}/v1/workspaces/{wid}/reports/detailed``) returns the same
entries as ``GET /v1/workspaces/{wid}/user/{uid}/time-entries`` in another shape:

=========================  =====================================================
report row                 time-entry API
=========================  =====================================================
``_id``                    ``id``
``timeInterval.duration``  seconds (int)  → ISO-8601 (``PT1H30M``); null while running
``timeInterval.start/end`` any offset     → UTC ``...Z``
``tagIds`` or ``tags[].id`` ``tagIds``
``customFields[]``         ``customFieldValues[]`` (+ ``timeEntryId``)
``rate``, ``costRate``     amounts        → ``hourlyRate``/``costRate`` objects
``isLocked`` / ``locked``  ``isLocked``
=========================  =====================================================

Rates: the report gives plain amounts, 0 where the API would say null. An hourly rate
is kept for billable entries (what the API reports: the rate Clockify applied, which
without a project is the member's or the workspace's), a cost rate when it is not 0. Everything the mirror's ``time_entries`` columns read comes out equal for
both paths; the tests compare them row by row.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from clockify_core.mirror.mapping import parse_time


def iso_instant(value: Any) -> str | None:
    if isinstance(value, str) and len(value) == 20 and value[-1] == "Z" and value[10] == "T":
        return value  # already yyyy-MM-ddThh:mm:ssZ: the common case, worth skipping the parse
    moment = parse_time(value)
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_duration(seconds: int) -> str:
    if seconds <= 0:
        return "PT0S"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{secs}S" if secs else "")


def _rate(amount: Any, currency: Any, *, keep_zero: bool = False) -> dict[str, Any] | None:
    if isinstance(amount, bool) or not isinstance(amount, int | float) or not (amount or keep_zero):
        return None
    return {"amount": int(amount), "currency": currency if isinstance(currency, str) else None}


def report_entry(row: Mapping[str, Any], workspace_id: str) -> dict[str, Any]:
    """One detailed-report row as the time-entry API would return it."""
    entry_id = row.get("_id") or row.get("id")
    interval = row.get("timeInterval") if isinstance(row.get("timeInterval"), Mapping) else {}
    assert isinstance(interval, Mapping)
    start, end = iso_instant(interval.get("start")), iso_instant(interval.get("end"))
    duration: str | None = None
    if end is not None:
        raw = interval.get("duration")
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            duration = iso_duration(int(raw))
        elif isinstance(raw, str):
            duration = raw
        else:
            begun, ended = parse_time(start), parse_time(end)
            duration = iso_duration(int((ended - begun).total_seconds())) if begun and ended else None
    tag_ids = row.get("tagIds")
    if not isinstance(tag_ids, list):
        tag_ids = [t["id"] for t in row.get("tags") or () if isinstance(t, Mapping) and isinstance(t.get("id"), str)]
    currency = row.get("currency")
    billable = row.get("billable")
    project_id = row.get("projectId") or None
    locked = row.get("isLocked", row.get("locked"))
    return {
        "id": entry_id,
        "description": row.get("description") or "",
        "tagIds": list(tag_ids),
        "userId": row.get("userId"),
        "billable": billable,
        "taskId": row.get("taskId") or None,
        "projectId": project_id,
        "workspaceId": workspace_id,
        "timeInterval": {"start": start, "end": end, "duration": duration},
        "customFieldValues": [
            {"customFieldId": field.get("customFieldId"), "timeEntryId": entry_id, "value": field.get("value"),
             "name": field.get("name"), "type": field.get("type")}
            for field in row.get("customFields") or ()
            if isinstance(field, Mapping)
        ],
        "type": row.get("type"),
        "hourlyRate": _rate(row.get("rate"), currency, keep_zero=True) if billable is True else None,
        "costRate": _rate(row.get("costRate"), currency),
        "isLocked": locked if isinstance(locked, bool) else None,
    }


def now_iso(moment: datetime) -> str:
    """``yyyy-MM-ddThh:mm:ssZ``, the format the time-entry and change-feed filters take."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def report_instant(moment: datetime) -> str:
    """The report's ``YYYY-MM-DDTHH:MM:SS.sssZ``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
