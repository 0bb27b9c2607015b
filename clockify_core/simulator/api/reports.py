"""The detailed report (reports host): filters, totals over the whole result, pages of up to 1,000."""

from __future__ import annotations

from array import array
from collections import OrderedDict
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body
from starlette.responses import Response

from clockify_core.errors import BadRequest
from clockify_core.simulator import render
from clockify_core.simulator.api.deps import (
    SimDep,
    authorize,
    json_response,
    page_params,
    workspace_of,
)
from clockify_core.simulator.auth import Principal
from clockify_core.simulator.model import Workspace
from clockify_core.simulator.render import parse_time

router = APIRouter(prefix="/v1/workspaces/{workspaceId}/reports")

# (workspace id, filter without paging, store version) -> matching rows and totals
_CACHE: OrderedDict[tuple[str, bytes, int], tuple[array[int], dict[str, Any]]] = OrderedDict()
_CACHE_SIZE = 8


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
    total = billable_total = 0
    for row in rows:
        d = store.duration[row]
        if d > 0:
            total += d
            if store.flags[row] & 1:
                billable_total += d
    totals = {"_id": "", "totalTime": total, "totalBillableTime": billable_total, "entriesCount": len(rows),
              "totalAmount": None, "amounts": []}
    return rows, totals


@router.post("/detailed", operation_id="generateDetailedReport")
async def detailed_report(workspaceId: str, sim: SimDep, principal: Annotated[Principal, authorize("generateDetailedReport")],
                          body: Annotated[dict[str, Any], Body()]) -> Response:
    ws = workspace_of(sim, principal)
    detailed = body.get("detailedFilter") or {}
    if not isinstance(detailed, dict):
        raise _invalid("detailedFilter must be an object")
    page, size = page_params(detailed.get("page"), detailed.get("pageSize"), maximum=sim.config.max_report_page_size)
    criteria = {k: v for k, v in body.items() if k != "detailedFilter"}
    key = (ws.id, orjson.dumps(criteria, option=orjson.OPT_SORT_KEYS), ws.entries.version)
    hit = _CACHE.get(key)
    if hit is None:
        hit = _CACHE[key] = _select(ws, criteria)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    rows, totals = hit
    n = len(rows)
    ascending = str(body.get("sortOrder", "DESCENDING")).upper() == "ASCENDING"
    first, stop = (page - 1) * size, min(page * size, n)
    picked = [rows[i] if ascending else rows[n - 1 - i] for i in range(first, stop)]
    last = page * size >= n
    return json_response({"totals": [totals] if n else [], "timeEntries": [render.report_entry(ws, r) for r in picked]},
                         headers={"Last-Page": "true" if last else "false"})
