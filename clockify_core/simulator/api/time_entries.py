"""Time entries: a user's list (newest first), one entry, writes, and running timers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from starlette.responses import Response

from clockify_core.errors import BadRequest, NotFound
from clockify_core.simulator import prerender, render
from clockify_core.simulator.api.deps import (
    SimDep,
    authorize,
    ensure_own_entry,
    json_response,
    page_params,
    paged_response,
    workspace_of,
)
from clockify_core.simulator.auth import Principal
from clockify_core.simulator.entries import RUNNING
from clockify_core.simulator.model import Workspace
from clockify_core.simulator.ops import not_found
from clockify_core.simulator.render import parse_time

router = APIRouter(prefix="/v1/workspaces/{workspaceId}")
JsonBody = Annotated[dict[str, Any], Body()]


def _when(value: object, name: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise BadRequest(f"{name} must be yyyy-MM-ddThh:mm:ssZ", message=f"Invalid {name} date", code=501) from exc


@router.get("/user/{userId}/time-entries", operation_id="getTimeEntries")
async def get_time_entries(
    workspaceId: str, userId: str, sim: SimDep, principal: Annotated[Principal, authorize("getTimeEntries")],
    page: Annotated[int | None, Query()] = None, page_size: Annotated[int | None, Query(alias="page-size")] = None,
    start: str | None = None, end: str | None = None, description: str | None = None,
    project: str | None = None, task: str | None = None, tags: Annotated[list[str] | None, Query()] = None,
    project_required: Annotated[bool | None, Query(alias="project-required")] = None,
    task_required: Annotated[bool | None, Query(alias="task-required")] = None,
    hydrated: bool = False, in_progress: Annotated[bool | None, Query(alias="in-progress")] = None,
) -> Response:
    ws = workspace_of(sim, principal)
    p, size = page_params(page, page_size, maximum=sim.config.max_page_size)
    user = ws.user_ix.get(userId)
    if user < 0 or userId not in ws.users:
        raise not_found("User", userId)
    store = ws.entries
    if in_progress:
        running = store.running.get(user)
        rows: Iterator[int] = iter(() if running is None else (running,))
    else:
        low, high = _when(start, "start"), _when(end, "end")
        rows = store.iter_desc(store.user_rows(user), low, None if high is None else high + 1)
    wanted = _filter(ws, rows, description=description, project=project, task=task, tags=tags,
                     project_required=project_required, task_required=task_required)
    if sim.config.prerender and not hydrated:
        return paged_response(wanted, p, size, encoded=lambda rows: prerender.time_entries(sim, ws, rows))
    return paged_response(wanted, p, size, lambda row: render.time_entry(ws, row, hydrated=hydrated))


def _filter(ws: Workspace, rows: Iterator[int], *, description: str | None, project: str | None, task: str | None,
            tags: list[str] | None, project_required: bool | None, task_required: bool | None) -> Iterator[int]:
    store = ws.entries
    if not any((description, project, task, tags, project_required, task_required)):
        yield from rows
        return
    p_ix = ws.project_ix.get(project) if project else None
    t_ix = ws.task_ix.get(task) if task else None
    tag_ix = {ws.tag_ix.get(t) for t in tags or ()}
    needle = description.lower() if description else None
    for row in rows:
        if p_ix is not None and store.project[row] != p_ix:
            continue
        if t_ix is not None and store.task[row] != t_ix:
            continue
        if project_required and store.project[row] < 0:
            continue
        if task_required and store.task[row] < 0:
            continue
        if tag_ix and not tag_ix.intersection(store.tag_sets[store.tags[row]]):
            continue
        if needle and needle not in store.descriptions[store.description[row]].lower():
            continue
        yield row


@router.get("/time-entries/status/in-progress", operation_id="getInProgressTimeEntries")
async def get_in_progress(workspaceId: str, sim: SimDep, principal: Annotated[Principal, authorize("getInProgressTimeEntries")],
                          page: Annotated[int | None, Query()] = None,
                          page_size: Annotated[int | None, Query(alias="page-size")] = None) -> Response:
    ws = workspace_of(sim, principal)
    p, size = page_params(page, page_size, default=10, maximum=1000)
    rows = sorted(ws.entries.running.values(), key=lambda r: -ws.entries.start[r])
    return paged_response(rows, p, size, lambda row: render.time_entry(ws, row))


@router.get("/time-entries/{id}", operation_id="getTimeEntry")
async def get_time_entry(workspaceId: str, id: str, sim: SimDep, principal: Annotated[Principal, authorize("getTimeEntry")],
                         hydrated: bool = False) -> Response:
    ws = workspace_of(sim, principal)
    row = sim.ops.entry_row(ws, id)
    ensure_own_entry(ws, principal, row)
    return json_response(render.time_entry(ws, row, hydrated=hydrated))


@router.post("/time-entries", operation_id="createTimeEntry", status_code=201)
async def create_time_entry(workspaceId: str, sim: SimDep, principal: Annotated[Principal, authorize("createTimeEntry")],
                            body: JsonBody) -> Response:
    ws = workspace_of(sim, principal)
    row = sim.ops.create_entry(ws, principal.user_id, body)
    return json_response(render.time_entry(ws, row), 201)


@router.post("/user/{userId}/time-entries", operation_id="createForOthers", status_code=201)
async def create_for_others(workspaceId: str, userId: str, sim: SimDep,
                            principal: Annotated[Principal, authorize("createForOthers")], body: JsonBody) -> Response:
    ws = workspace_of(sim, principal)
    row = sim.ops.create_entry(ws, userId, body)
    return json_response(render.time_entry(ws, row), 201)


@router.put("/time-entries/{id}", operation_id="updateTimeEntry")
async def update_time_entry(workspaceId: str, id: str, sim: SimDep,
                            principal: Annotated[Principal, authorize("updateTimeEntry")], body: JsonBody) -> Response:
    ws = workspace_of(sim, principal)
    row = sim.ops.entry_row(ws, id)
    ensure_own_entry(ws, principal, row)
    row = sim.ops.update_entry(ws, row, body)
    return json_response(render.time_entry(ws, row))


@router.delete("/time-entries/{id}", operation_id="deleteTimeEntry", status_code=204)
async def delete_time_entry(workspaceId: str, id: str, sim: SimDep,
                            principal: Annotated[Principal, authorize("deleteTimeEntry")]) -> Response:
    ws = workspace_of(sim, principal)
    row = sim.ops.entry_row(ws, id)
    ensure_own_entry(ws, principal, row)
    sim.ops.delete_entry(ws, row)
    return Response(status_code=204)


@router.patch("/user/{userId}/time-entries", operation_id="stopRunningTimeEntry")
async def stop_running(workspaceId: str, userId: str, sim: SimDep,
                       principal: Annotated[Principal, authorize("stopRunningTimeEntry")], body: JsonBody) -> Response:
    ws = workspace_of(sim, principal)
    end = _when(body.get("end"), "end")
    if end is None:
        raise BadRequest("end is required", message="end must not be null", code=501)
    row = ws.entries.running.get(ws.user_ix.get(userId))
    if row is None or ws.entries.duration[row] != RUNNING:
        raise NotFound("No running time entry", message="Time entry is not running", code=404)
    if end < ws.entries.start[row]:
        raise BadRequest("end is before start", message="End must be after start", code=501)
    sim.ops.stop_timer(ws, userId, end)
    return json_response(render.time_entry(ws, row))
