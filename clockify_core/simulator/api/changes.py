"""The change feed (``entities/created|updated|deleted``, experimental in Clockify), oldest change first."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from clockify_core.errors import BadRequest
from clockify_core.simulator import render
from clockify_core.simulator.api.deps import (
    SimDep,
    authorize,
    json_response,
    page_params,
    paged,
    workspace_of,
)
from clockify_core.simulator.auth import Principal
from clockify_core.simulator.model import Workspace
from clockify_core.simulator.render import iso, parse_time

router = APIRouter(prefix="/v1/workspaces/{workspaceId}/entities")
DOCUMENT_TYPES = {"TIME_ENTRY", "TIME_ENTRY_CUSTOM_FIELD_VALUE", "TIME_ENTRY_RATE"}
WINDOW = 30 * 86_400
TypeQ = Annotated[list[str], Query(alias="type")]
PageQ = Annotated[int | None, Query()]
LimitQ = Annotated[int | None, Query()]


def _window(sim_now: int, start: str | None, end: str | None) -> tuple[int, int]:
    try:
        s = parse_time(start) if start else None
        e = parse_time(end) if end else None
    except ValueError as exc:
        raise BadRequest("start/end must be yyyy-MM-ddThh:mm:ssZ", message="Invalid date", code=501) from exc
    # Missing bounds default to a 30-day range, as the spec describes.
    if s is None and e is None:
        e = sim_now
    if s is None:
        assert e is not None
        s = e - WINDOW
    if e is None:
        e = s + WINDOW
    return s, e


def _types(types: list[str]) -> set[str]:
    wanted = {t.strip() for raw in types for t in raw.split(",") if t.strip()}
    if not wanted or wanted - DOCUMENT_TYPES:
        raise BadRequest(f"type must be among {sorted(DOCUMENT_TYPES)}", message="Invalid type", code=501)
    return wanted


def _info(ws: Workspace, row: int) -> dict[str, Any]:
    entry = render.time_entry(ws, row)
    store = ws.entries
    return {
        "id": entry["id"], "description": entry["description"], "tagIds": entry["tagIds"], "userId": entry["userId"],
        "billable": entry["billable"], "taskId": entry["taskId"], "projectId": entry["projectId"],
        "timeInterval": entry["timeInterval"], "workspaceId": ws.id, "type": entry["type"], "kioskId": None,
        "approvalStatus": "UNSUBMITTED", "documentType": "TIME_ENTRY",
        "auditMetadata": {"createdAt": iso(store.created[row]), "updatedAt": iso(store.updated[row])},
    }


def _documents(ws: Workspace, rows: Iterator[int], types: set[str]) -> Iterator[dict[str, Any]]:
    store = ws.entries
    for row in rows:
        if "TIME_ENTRY" in types:
            yield _info(ws, row)
        if "TIME_ENTRY_CUSTOM_FIELD_VALUE" in types:
            entry_id = store.id_of(row)
            meta = {"createdAt": iso(store.created[row]), "updatedAt": iso(store.updated[row])}
            for index, value in store.custom_sets[store.custom[row]]:
                yield {"id": f"{entry_id}:{index}", "customFieldId": ws.field_ix.ids[index], "timeEntryId": entry_id,
                       "value": value, "sourceType": "TIMEENTRY", "documentType": "TIME_ENTRY_CUSTOM_FIELD_VALUE",
                       "auditMetadata": meta}
        if "TIME_ENTRY_RATE" in types:
            info = _info(ws, row)
            hourly, cost = render.time_entry(ws, row)["hourlyRate"], render.time_entry(ws, row)["costRate"]
            yield info | {"documentType": "TIME_ENTRY_RATE", "hourlyRate": hourly, "costRate": cost}


def _feed(sim: SimDep, principal: Principal, types: list[str], start: str | None, end: str | None,
          page: int | None, limit: int | None, *, created: bool) -> Response:
    ws = workspace_of(sim, principal)
    wanted = _types(types)
    p, size = page_params(page, limit, maximum=sim.config.max_page_size)
    low, high = _window(int(sim.clock()), start, end)
    born = ws.entries.created
    if created:
        # Every row created in the range, however often it changed since (updated >= created).
        rows: Iterator[int] = (r for r in ws.entries.updated_between(low, 1 << 39) if low <= born[r] <= high)
    else:
        # The spec (getUpdatedEntityInfo): a row both created and updated in the range is left
        # out of /updated; it is only in /created.
        rows = (r for r in ws.entries.updated_between(low, high + 1) if not low <= born[r] <= high)
    items, last = paged(_documents(ws, rows, wanted), p, size)
    return json_response(items, headers={"Last-Page": "true" if last else "false"})


@router.get("/updated", operation_id="getUpdatedEntityInfo")
async def updated(workspaceId: str, sim: SimDep, principal: Annotated[Principal, authorize("getUpdatedEntityInfo")],
                  type: TypeQ, start: str | None = None, end: str | None = None,
                  page: PageQ = None, limit: LimitQ = None) -> Response:
    return _feed(sim, principal, type, start, end, page, limit, created=False)


@router.get("/created", operation_id="getCreatedEntityInfo")
async def created(workspaceId: str, sim: SimDep, principal: Annotated[Principal, authorize("getCreatedEntityInfo")],
                  type: TypeQ, start: str | None = None, end: str | None = None,
                  page: PageQ = None, limit: LimitQ = None) -> Response:
    return _feed(sim, principal, type, start, end, page, limit, created=True)


@router.get("/deleted", operation_id="getDeletedEntityInfo")
async def deleted(workspaceId: str, sim: SimDep, principal: Annotated[Principal, authorize("getDeletedEntityInfo")],
                  type: TypeQ, start: str | None = None, end: str | None = None,
                  page: PageQ = None, limit: LimitQ = None) -> Response:
    ws = workspace_of(sim, principal)
    wanted = _types(type)
    p, size = page_params(page, limit, maximum=sim.config.max_page_size)
    low, high = _window(int(sim.clock()), start, end)
    docs = ({"id": ws.entries.id_of(d.row), "deletionBinId": d.bin_id, "deletedAt": iso(d.deleted_at),
             "documentType": "TIME_ENTRY", "document": render.time_entry(ws, d.row), "eligibleForRestore": True}
            for d in ws.deletions if low <= d.deleted_at <= high and "TIME_ENTRY" in wanted)
    items, last = paged(docs, p, size)
    return json_response({"response": items}, headers={"Last-Page": "true" if last else "false"})
