"""The detailed and summary reports (reports host): filters, totals and amounts over the whole result.

The detailed report pages its entries (up to 1,000 a page); the summary report groups them
by up to two of PROJECT, CLIENT, USER, TAG and TASK. Durations are seconds; amounts are cents
of the workspace's currency, what each billable entry earns at the rate Clockify applies
(``simulator/rates.py``), summed. Running timers count as entries but add no time or amount.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body
from starlette.responses import Response

from clockify_core.errors import BadRequest
from clockify_core.simulator import prerender, render
from clockify_core.simulator.api.deps import (
    SimDep,
    authorize,
    json_response,
    page_params,
    workspace_of,
)
from clockify_core.simulator.auth import Principal
from clockify_core.simulator.model import Workspace
from clockify_core.simulator.rates import entry_amount
from clockify_core.simulator.render import parse_time

router = APIRouter(prefix="/v1/workspaces/{workspaceId}/reports")

# (workspace id, filter without paging, store version) -> matching rows and totals
_CACHE: OrderedDict[tuple[str, bytes, int], tuple[array[int], dict[str, Any]]] = OrderedDict()
_CACHE_SIZE = 8


# The longest range a Free-plan workspace's report covers (docs/clockify.md, "Reports").
FREE_PLAN_REPORT_SECONDS = 366 * 86400


def _invalid(what: str) -> BadRequest:
    return BadRequest(f"{what} in the report filter", message="Invalid report filter", code=501)


def _ids(section: Any) -> tuple[set[str], str] | None:
    if not isinstance(section, dict) or not section.get("ids"):
        return None
    ids = section["ids"]
    if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
        raise _invalid("ids must be a list of strings")
    return set(ids), str(section.get("contains", "CONTAINS"))


def _matches(value_ids: set[str], rule: tuple[set[str], str] | None) -> bool:
    if rule is None:
        return True
    ids, contains = rule
    hit = bool(value_ids & ids)
    if contains == "DOES_NOT_CONTAIN":
        return not hit
    if contains == "CONTAINS_ONLY":
        return bool(value_ids) and value_ids <= ids
    return hit


def _select(ws: Workspace, f: dict[str, Any]) -> tuple[array[int], dict[str, Any]]:
    store = ws.entries
    try:
        low, high = parse_time(f["dateRangeStart"]), parse_time(f["dateRangeEnd"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRequest("dateRangeStart and dateRangeEnd are required ISO dates", message="Invalid date range", code=501) from exc
    if ws.plan == "free" and high - low > FREE_PLAN_REPORT_SECONDS:
        raise BadRequest("A report on the Free plan covers at most 366 days", message="Invalid date range", code=501)
    lo, hi = store.by_start.span(low << 24, (high + 1) << 24)
    rows = store.by_start.rows[lo:hi]
    users, projects, clients = _ids(f.get("users")), _ids(f.get("projects")), _ids(f.get("clients"))
    tags, tasks = _ids(f.get("tags")), _ids(f.get("tasks"))
    billable = f.get("billable")
    description = f.get("description") or ""
    if not isinstance(description, str):
        raise _invalid("description must be a string")
    text = description.lower() or None
    without_description = bool(f.get("withoutDescription"))
    if any((users, projects, clients, tags, tasks, billable is not None, text, without_description)):
        client_of = {ws.project_ix.get(pid): p["clientId"] for pid, p in ws.projects.items()}
        keep = array("I")
        for row in rows:
            if billable is not None and store.is_billable(row) != billable:
                continue
            if users and not _matches({ws.user_ix.ids[store.user[row]]}, users):
                continue
            p = store.project[row]
            if projects and not _matches({ws.project_ix.ids[p]} if p >= 0 else set(), projects):
                continue
            if clients and not _matches({client_of.get(p) or ""} - {""}, clients):
                continue
            t = store.task[row]
            if tasks and not _matches({ws.task_ix.ids[t]} if t >= 0 else set(), tasks):
                continue
            if tags and not _matches({ws.tag_ix.ids[x] for x in store.tag_sets[store.tags[row]]}, tags):
                continue
            desc = store.descriptions[store.description[row]]
            if (without_description and desc) or (text and text not in desc.lower()):
                continue
            keep.append(row)
        rows = keep
    total = billable_total = amount = 0
    for row in rows:
        d = store.duration[row]
        if d > 0:
            total += d
            if store.flags[row] & 1:
                billable_total += d
                amount += entry_amount(ws, row)
    # Amounts are in cents of the workspace's currency, rounded per entry (simulator/rates.py).
    totals = {"_id": "", "totalTime": total, "totalBillableTime": billable_total, "entriesCount": len(rows),
              "totalAmount": amount, "amounts": [{"type": "EARNED", "value": amount}]}
    return rows, totals


def _criteria(body: dict[str, Any], principal: Principal, section: str) -> dict[str, Any]:
    criteria = {k: v for k, v in body.items() if k != section}
    if not principal.is_admin:
        # A member's report holds their own time only, whatever users the filter names.
        criteria["users"] = {"ids": [principal.user_id], "contains": "CONTAINS"}
    return criteria


def _selected(ws: Workspace, criteria: dict[str, Any]) -> tuple[array[int], dict[str, Any]]:
    key = (ws.id, orjson.dumps(criteria, option=orjson.OPT_SORT_KEYS), ws.entries.version)
    hit = _CACHE.get(key)
    if hit is None:
        hit = _CACHE[key] = _select(ws, criteria)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return hit


@router.post("/detailed", operation_id="generateDetailedReport")
async def detailed_report(workspaceId: str, sim: SimDep, principal: Annotated[Principal, authorize("generateDetailedReport")],
                          body: Annotated[dict[str, Any], Body()]) -> Response:
    ws = workspace_of(sim, principal)
    detailed = body.get("detailedFilter") or {}
    if not isinstance(detailed, dict):
        raise _invalid("detailedFilter must be an object")
    page, size = page_params(detailed.get("page"), detailed.get("pageSize"), maximum=sim.config.max_report_page_size)
    rows, totals = _selected(ws, _criteria(body, principal, "detailedFilter"))
    n = len(rows)
    ascending = str(body.get("sortOrder", "DESCENDING")).upper() == "ASCENDING"
    first, stop = (page - 1) * size, min(page * size, n)
    picked = [rows[i] if ascending else rows[n - 1 - i] for i in range(first, stop)]
    headers = {"Last-Page": "true" if page * size >= n else "false"}
    if sim.config.prerender:
        content = prerender.detailed_report(sim, ws, picked, [totals] if n else [])
        return Response(content, media_type="application/json", headers=headers)
    return json_response({"totals": [totals] if n else [], "timeEntries": [render.report_entry(ws, r) for r in picked]},
                         headers=headers)


SUMMARY_GROUPS = ("PROJECT", "CLIENT", "USER", "TAG", "TASK")
_WITHOUT = {"PROJECT": "(Without project)", "CLIENT": "(Without client)", "TAG": "(Without tag)",
            "TASK": "(Without task)", "USER": "(Unknown user)"}


def _group_keys(ws: Workspace, row: int, group: str) -> list[str]:
    """The ids ``row`` is grouped under ("" for none); an entry with two tags is in both tag groups."""
    store = ws.entries
    if group == "USER":
        return [ws.user_ix.ids[store.user[row]]]
    if group == "TAG":
        return [ws.tag_ix.ids[t] for t in store.tag_sets[store.tags[row]]] or [""]
    if group == "TASK":
        return [ws.task_ix.id(store.task[row]) or ""]
    project_id = ws.project_ix.id(store.project[row]) or ""
    if group == "PROJECT":
        return [project_id]
    project = ws.projects.get(project_id)
    return [(project or {}).get("clientId") or ""]


def _group_name(ws: Workspace, group: str, key: str) -> str:
    table = {"PROJECT": ws.projects, "CLIENT": ws.clients, "USER": ws.users, "TAG": ws.tags, "TASK": ws.tasks}[group]
    record = table.get(key) if key else None
    return str(record["name"]) if record else _WITHOUT[group]


def _groups(ws: Workspace, rows: list[int], groups: list[str]) -> list[dict[str, Any]]:
    store = ws.entries
    buckets: dict[str, list[int]] = {}
    for row in rows:
        for key in _group_keys(ws, row, groups[0]):
            buckets.setdefault(key, []).append(row)
    out = []
    for key, members in buckets.items():
        duration = sum(max(store.duration[r], 0) for r in members)
        name = _group_name(ws, groups[0], key)
        item: dict[str, Any] = {"_id": key, "duration": duration, "amount": sum(entry_amount(ws, r) for r in members),
                                "name": name, "nameLowerCase": name.lower()}
        if groups[0] == "PROJECT":
            item["clientName"] = (ws.projects.get(key) or {}).get("clientName") or ""
        if len(groups) > 1:
            item["children"] = _groups(ws, members, groups[1:])
        out.append(item)
    return sorted(out, key=lambda g: (g["nameLowerCase"], g["_id"]))


@router.post("/summary", operation_id="generateSummaryReport")
async def summary_report(workspaceId: str, sim: SimDep, principal: Annotated[Principal, authorize("generateSummaryReport")],
                         body: Annotated[dict[str, Any], Body()]) -> Response:
    ws = workspace_of(sim, principal)
    summary = body.get("summaryFilter")
    if not isinstance(summary, dict):
        raise _invalid("summaryFilter is required and must be an object")
    groups = summary.get("groups") or ["PROJECT"]
    if not isinstance(groups, list) or not 1 <= len(groups) <= 2 or any(g not in SUMMARY_GROUPS for g in groups):
        raise _invalid(f"summaryFilter.groups must list one or two of {', '.join(SUMMARY_GROUPS)}")
    rows, totals = _selected(ws, _criteria(body, principal, "summaryFilter"))
    return json_response({"totals": [totals] if len(rows) else [], "groupOne": _groups(ws, list(rows), groups)})
