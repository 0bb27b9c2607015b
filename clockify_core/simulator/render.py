"""Entities as Clockify shows them: API bodies, webhook bodies (the shapes of ../shared/clockify/samples, copied to tests/fixtures/samples) and report rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from clockify_core.simulator.rates import applied_rate, earned

if TYPE_CHECKING:
    from clockify_core.simulator.model import Record, Workspace

_DATE_CACHE: dict[int, str] = {}


def iso(seconds: int) -> str:
    """RFC 3339 ``date-time`` in UTC. ``strftime("%Y")`` does not pad years below 1000
    (``197-02-15``), which no date-time parser accepts."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
            f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z")


def iso_duration(seconds: int) -> str:
    if seconds <= 0:
        return "PT0S"
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return "PT" + (f"{h}H" if h else "") + (f"{m}M" if m else "") + (f"{s}S" if s else "")


def parse_time(value: object) -> int:
    """``yyyy-MM-ddThh:mm:ssZ`` (and other ISO-8601 forms) to epoch seconds.

    Anything else raises ``ValueError``, a non-string (a number from a JSON body) too, so
    callers answer 400 for every malformed date.
    """
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO-8601 date string, got {type(value).__name__}")
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def user_settings(time_zone: str) -> dict[str, Any]:
    return {
        "weekStart": "MONDAY", "timeZone": time_zone, "timeFormat": "HOUR24", "dateFormat": "DD/MM/YYYY",
        "sendNewsletter": False, "weeklyUpdates": False, "longRunning": False, "scheduledReports": True,
        "approval": True, "pto": True, "alerts": True, "reminders": True, "onboarding": True,
        "timeTrackingManual": False, "summaryReportSettings": {"group": "Project", "subgroup": "Time Entry"},
        "isCompactViewOn": False, "dashboardSelection": "ME", "dashboardViewType": "PROJECT",
        "dashboardPinToTop": False, "projectListCollapse": 50, "collapseAllProjectLists": False,
        "groupSimilarEntriesDisabled": False, "myStartOfDay": "09:00", "darkTheme": False,
        "projectPickerSpecialFilter": False, "lang": "EN", "multiFactorEnabled": False, "scheduling": True,
        "showOnlyWorkingDays": False, "theme": "DEFAULT",
    }


# time entries -----------------------------------------------------------------------

def _interval(ws: Workspace, row: int) -> dict[str, Any]:
    store = ws.entries
    start = store.start[row]
    end = store.end(row)
    return {"start": iso(start), "end": None if end is None else iso(end),
            "duration": None if end is None else iso_duration(end - start)}


def _custom_values(ws: Workspace, row: int, entry_id: str) -> list[dict[str, Any]]:
    out = []
    for field_index, value in ws.entries.custom_sets[ws.entries.custom[row]]:
        fid = ws.field_ix.ids[field_index]
        cf = ws.custom_fields.get(fid)
        out.append({"customFieldId": fid, "timeEntryId": entry_id, "value": value,
                    "name": cf["name"] if cf else "", "type": cf["type"] if cf else "TXT"})
    return out


def _rates(ws: Workspace, row: int) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The entry's ``hourlyRate`` (the rate Clockify applied, for billable entries) and ``costRate``."""
    store = ws.entries
    rate = applied_rate(ws, row) if store.is_billable(row) else None
    hourly = None if rate is None else {"amount": rate, "currency": ws.currency}
    user = ws.users.get(ws.user_ix.ids[store.user[row]])
    cost = user["memberships"][0]["costRate"] if user and user.get("memberships") else None
    return hourly, cost


def time_entry(ws: Workspace, row: int, *, hydrated: bool = False) -> dict[str, Any]:
    """``TimeEntryWithRatesDtoV1`` (hydrated adds project, task, tags and user)."""
    store = ws.entries
    entry_id = store.id_of(row)
    tag_ids = [ws.tag_ix.ids[t] for t in store.tag_sets[store.tags[row]]]
    hourly, cost = _rates(ws, row)
    body: dict[str, Any] = {
        "id": entry_id,
        "description": store.descriptions[store.description[row]],
        "tagIds": tag_ids,
        "userId": ws.user_ix.ids[store.user[row]],
        "billable": store.is_billable(row),
        "taskId": ws.task_ix.id(store.task[row]),
        "projectId": ws.project_ix.id(store.project[row]),
        "workspaceId": ws.id,
        "timeInterval": _interval(ws, row),
        "customFieldValues": _custom_values(ws, row, entry_id),
        "type": "BREAK" if store.flags[row] & 8 else "REGULAR",
        "kioskId": None,
        "hourlyRate": hourly,
        "costRate": cost,
        "isLocked": bool(store.flags[row] & 4),
    }
    if hydrated:
        body.update(_hydration(ws, row, tag_ids))
    return body


def _hydration(ws: Workspace, row: int, tag_ids: list[str]) -> dict[str, Any]:
    store = ws.entries
    pid = ws.project_ix.id(store.project[row])
    tid = ws.task_ix.id(store.task[row])
    user = ws.users.get(ws.user_ix.ids[store.user[row]])
    return {
        "project": project_brief(ws.projects[pid]) if pid and pid in ws.projects else None,
        "task": task_webhook(ws, ws.tasks[tid], with_workspace=True) if tid and tid in ws.tasks else None,
        "user": {"name": user["name"], "id": user["id"], "status": user["status"]} if user else None,
        "tags": [tag(ws.tags[t]) for t in tag_ids if t in ws.tags],
    }


def time_entry_webhook(ws: Workspace, row: int) -> dict[str, Any]:
    """The body of NEW_TIME_ENTRY and its family (samples/NEW_TIME_ENTRY.json)."""
    body = time_entry(ws, row, hydrated=True)
    for key in ("type", "kioskId"):
        body.pop(key)
    for value in body["customFieldValues"]:
        value.pop("type")
    return {k: body[k] for k in ("id", "description", "tagIds", "userId", "billable", "taskId", "projectId",
                                    "timeInterval", "workspaceId", "isLocked", "hourlyRate", "costRate",
                                    "customFieldValues", "project", "task", "user", "tags")}


def report_entry(ws: Workspace, row: int) -> dict[str, Any]:
    """One row of the detailed report (``TimeEntryDto`` in the reports spec)."""
    store = ws.entries
    entry_id = store.id_of(row)
    pid = ws.project_ix.id(store.project[row])
    project = ws.projects.get(pid) if pid else None
    tid = ws.task_ix.id(store.task[row])
    task = ws.tasks.get(tid) if tid else None
    user = ws.users.get(ws.user_ix.ids[store.user[row]])
    start, end = store.start[row], store.end(row)
    hourly, cost = _rates(ws, row)
    seconds = 0 if end is None else end - start
    rate = hourly["amount"] if hourly else 0
    cost_rate = cost["amount"] if cost else 0
    amount = earned(rate, seconds)  # what Clockify's report shows: billable entries only
    tag_ids = [ws.tag_ix.ids[t] for t in store.tag_sets[store.tags[row]]]
    return {
        "_id": entry_id,
        "description": store.descriptions[store.description[row]],
        "userId": user["id"] if user else None,
        "timeInterval": {"start": iso(start), "end": None if end is None else iso(end), "duration": seconds},
        "billable": store.is_billable(row),
        "projectId": pid,
        "taskId": tid,
        "tagIds": tag_ids,
        "approvalRequestId": None,
        "type": "REGULAR",
        "isLocked": bool(store.flags[row] & 4),
        "locked": bool(store.flags[row] & 4),
        "currency": ws.currency,
        "amount": amount,
        "rate": rate,
        "earnedRate": rate,
        "costRate": cost_rate,
        "costAmount": earned(cost_rate, seconds),
        "projectName": project["name"] if project else None,
        "projectColor": project["color"] if project else None,
        "clientName": (project["clientName"] or None) if project else None,
        "clientId": (project["clientId"] or None) if project else None,
        "taskName": task["name"] if task else None,
        "userName": user["name"] if user else None,
        "userEmail": user["email"] if user else None,
        "tags": [{"id": t, "name": ws.tags[t]["name"]} for t in tag_ids if t in ws.tags],
        "customFields": [
            {"customFieldId": v["customFieldId"], "name": v["name"], "type": v["type"], "value": v["value"]}
            for v in _custom_values(ws, row, entry_id)
        ],
    }


# small entities -------------------------------------------------------------------------

def tag(record: Record) -> dict[str, Any]:
    return {"name": record["name"], "workspaceId": record["workspaceId"], "archived": record["archived"], "id": record["id"]}


def client_webhook(record: Record) -> dict[str, Any]:
    return {"id": record["id"], "name": record["name"], "workspaceId": record["workspaceId"], "archived": record["archived"]}


def task_webhook(ws: Workspace, record: Record, *, with_workspace: bool = False) -> dict[str, Any]:
    body = {k: record[k] for k in ("id", "name", "projectId", "assigneeIds", "assigneeId", "userGroupIds",
                                   "estimate", "status", "duration")}
    if with_workspace:
        body["workspaceId"] = ws.id
    return body


def task_api(ws: Workspace, record: Record) -> dict[str, Any]:
    return dict(record)


def project_brief(record: Record) -> dict[str, Any]:
    return {k: record[k] for k in ("name", "clientId", "clientName", "workspaceId", "billable", "estimate", "color",
                                   "archived", "duration", "note", "id", "public", "template")}


def project_webhook(ws: Workspace, record: Record) -> dict[str, Any]:
    """samples/NEW_PROJECT.json: the project with its tasks and client."""
    client = ws.clients.get(record["clientId"]) if record["clientId"] else None
    body = {k: record[k] for k in ("id", "name", "hourlyRate", "clientId", "workspaceId", "billable", "color",
                                   "estimate", "archived", "duration", "clientName", "note", "public", "template")}
    body["hourlyRate"] = {"amount": record["hourlyRate"]["amount"]} if record.get("hourlyRate") else None
    body["tasks"] = [task_webhook(ws, t, with_workspace=True) for t in ws.tasks.values() if t["projectId"] == record["id"]]
    body["client"] = client_webhook(client) if client else None
    return body


def project_api(record: Record) -> dict[str, Any]:
    """``ProjectDtoImplV1``. ``isPublic`` and ``isTemplate`` are write-only in the spec: a
    request may send them, a response carries ``public`` and ``template`` instead."""
    return dict(record)


def user_brief(record: Record) -> dict[str, Any]:
    return {"id": record["id"], "email": record["email"], "name": record["name"]}


def user_full(record: Record) -> dict[str, Any]:
    """samples/USER_JOINED_WORKSPACE.json."""
    return {"id": record["id"], "email": record["email"], "name": record["name"],
            "profilePicture": record["profilePicture"], "settings": record["settings"]}


def user_group(record: Record) -> dict[str, Any]:
    return {k: record[k] for k in ("id", "name", "workspaceId", "userIds", "teamManagers")}
