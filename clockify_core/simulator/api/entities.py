"""Clients, projects, tasks, tags and custom fields."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from starlette.responses import Response

from clockify_core.simulator import render
from clockify_core.simulator.api.deps import (
    SimDep,
    authorize,
    json_response,
    page_params,
    paged_response,
    public,
    sort_records,
    text_match,
    workspace_of,
)
from clockify_core.simulator.auth import Principal
from clockify_core.simulator.ops import not_found

router = APIRouter(prefix="/v1/workspaces/{workspaceId}")
PageQ = Annotated[int | None, Query(alias="page")]
SizeQ = Annotated[int | None, Query(alias="page-size")]
SortCol = Annotated[str | None, Query(alias="sort-column")]
SortOrd = Annotated[str | None, Query(alias="sort-order")]
JsonBody = Annotated[dict[str, Any], Body()]


def _name_ok(name: str | None, value: str, strict: bool | None) -> bool:
    if name is None:
        return True
    return value.lower() == name.lower() if strict else name.lower() in value.lower()


# clients -------------------------------------------------------------------------------

@router.get("/clients", operation_id="getClients")
async def get_clients(workspaceId: str, sim: SimDep, principal: Annotated[Principal, authorize("getClients")],
                      page: PageQ = None, page_size: SizeQ = None, name: str | None = None,
                      archived: bool | None = None, sort_column: SortCol = None, sort_order: SortOrd = None) -> Response:
    ws = workspace_of(sim, principal)
    p, size = page_params(page, page_size, maximum=sim.config.max_page_size)
    rows = (c for c in ws.clients.values() if text_match(name, c["name"]) and (archived is None or c["archived"] == archived))
    return paged_response(sort_records(rows, sort_column, sort_order), p, size, public)


@router.get("/clients/{id}", operation_id="getClient")
async def get_client(workspaceId: str, id: str, sim: SimDep, principal: Annotated[Principal, authorize("getClient")]) -> Response:
    client = workspace_of(sim, principal).clients.get(id)
    if client is None:
        raise not_found("Client", id)
    return json_response(public(client))


@router.post("/clients", operation_id="createClient", status_code=201)
async def create_client(workspaceId: str, sim: SimDep, principal: Annotated[Principal, authorize("createClient")],
                        body: JsonBody) -> Response:
    return json_response(public(sim.ops.create_client(workspace_of(sim, principal), body)), 201)


@router.put("/clients/{id}", operation_id="updateClient")
async def update_client(workspaceId: str, id: str, sim: SimDep, principal: Annotated[Principal, authorize("updateClient")],
                        body: JsonBody) -> Response:
    return json_response(public(sim.ops.update_client(workspace_of(sim, principal), id, body)))


@router.delete("/clients/{id}", operation_id="deleteClient")
async def delete_client(workspaceId: str, id: str, sim: SimDep, principal: Annotated[Principal, authorize("deleteClient")]) -> Response:
    return json_response(public(sim.ops.delete_client(workspace_of(sim, principal), id)))


# projects ----------------------------------------------------------------------------------

@router.get("/projects", operation_id="getProjects")
async def get_projects(
    workspaceId: str, sim: SimDep, principal: Annotated[Principal, authorize("getProjects")],
    page: PageQ = None, page_size: SizeQ = None, name: str | None = None,
    strict_name_search: Annotated[bool | None, Query(alias="strict-name-search")] = None,
    archived: bool | None = None, billable: bool | None = None,
    clients: Annotated[list[str] | None, Query()] = None,
    is_template: Annotated[bool | None, Query(alias="is-template")] = None,
    hydrated: bool = False, sort_column: SortCol = None, sort_order: SortOrd = None,
) -> Response:
    ws = workspace_of(sim, principal)
    p, size = page_params(page, page_size, maximum=sim.config.max_page_size)
    rows = (r for r in ws.projects.values()
            if _name_ok(name, r["name"], strict_name_search) and (archived is None or r["archived"] == archived)
            and (billable is None or r["billable"] == billable) and (not clients or r["clientId"] in clients)
            and (is_template is None or r["template"] == is_template))
    return paged_response(sort_records(rows, sort_column, sort_order), p, size, render.project_api)


@router.get("/projects/{projectId}", operation_id="getProject")
async def get_project(workspaceId: str, projectId: str, sim: SimDep,
                      principal: Annotated[Principal, authorize("getProject")], hydrated: bool = False) -> Response:
    ws = workspace_of(sim, principal)
    project = ws.projects.get(projectId)
    if project is None:
        raise not_found("Project", projectId)
    body = render.project_api(project)
    if hydrated:
        body["tasks"] = [t for t in ws.tasks.values() if t["projectId"] == projectId]
    return json_response(body)


@router.post("/projects", operation_id="createNewProject", status_code=201)
async def create_project(workspaceId: str, sim: SimDep, principal: Annotated[Principal, authorize("createNewProject")],
                         body: JsonBody) -> Response:
    return json_response(render.project_api(sim.ops.create_project(workspace_of(sim, principal), body)), 201)


@router.put("/projects/{projectId}", operation_id="updateProject")
async def update_project(workspaceId: str, projectId: str, sim: SimDep,
                         principal: Annotated[Principal, authorize("updateProject")], body: JsonBody) -> Response:
    return json_response(render.project_api(sim.ops.update_project(workspace_of(sim, principal), projectId, body)))


@router.delete("/projects/{projectId}", operation_id="deleteProject")
async def delete_project(workspaceId: str, projectId: str, sim: SimDep,
                         principal: Annotated[Principal, authorize("deleteProject")]) -> Response:
    return json_response(render.project_api(sim.ops.delete_project(workspace_of(sim, principal), projectId)))


# tasks ---------------------------------------------------------------------------------------

@router.get("/projects/{projectId}/tasks", operation_id="getTasks")
async def get_tasks(workspaceId: str, projectId: str, sim: SimDep, principal: Annotated[Principal, authorize("getTasks")],
                    page: PageQ = None, page_size: SizeQ = None, name: str | None = None,
                    strict_name_search: Annotated[bool | None, Query(alias="strict-name-search")] = None,
                    is_active: Annotated[bool | None, Query(alias="is-active")] = None,
                    sort_column: SortCol = None, sort_order: SortOrd = None) -> Response:
    ws = workspace_of(sim, principal)
    if projectId not in ws.projects:
        raise not_found("Project", projectId)
    p, size = page_params(page, page_size, maximum=sim.config.max_page_size)
    rows = (t for t in ws.tasks.values()
            if t["projectId"] == projectId and _name_ok(name, t["name"], strict_name_search)
            and (is_active is None or (t["status"] == "ACTIVE") == is_active))
    return paged_response(sort_records(rows, sort_column, sort_order), p, size, public)


@router.get("/projects/{projectId}/tasks/{taskId}", operation_id="getTask")
async def get_task(workspaceId: str, projectId: str, taskId: str, sim: SimDep,
                   principal: Annotated[Principal, authorize("getTask")]) -> Response:
    return json_response(public(sim.ops.task(workspace_of(sim, principal), projectId, taskId)))


@router.post("/projects/{projectId}/tasks", operation_id="createTask", status_code=201)
async def create_task(workspaceId: str, projectId: str, sim: SimDep,
                      principal: Annotated[Principal, authorize("createTask")], body: JsonBody) -> Response:
    return json_response(public(sim.ops.create_task(workspace_of(sim, principal), projectId, body)), 201)


@router.put("/projects/{projectId}/tasks/{taskId}", operation_id="updateTask")
async def update_task(workspaceId: str, projectId: str, taskId: str, sim: SimDep,
                      principal: Annotated[Principal, authorize("updateTask")], body: JsonBody) -> Response:
    return json_response(public(sim.ops.update_task(workspace_of(sim, principal), projectId, taskId, body)))


@router.delete("/projects/{projectId}/tasks/{taskId}", operation_id="deleteTask")
async def delete_task(workspaceId: str, projectId: str, taskId: str, sim: SimDep,
                      principal: Annotated[Principal, authorize("deleteTask")]) -> Response:
    return json_response(public(sim.ops.delete_task(workspace_of(sim, principal), projectId, taskId)))


# tags ------------------------------------------------------------------------------------------

@router.get("/tags", operation_id="getTags")
async def get_tags(workspaceId: str, sim: SimDep, principal: Annotated[Principal, authorize("getTags")],
                   page: PageQ = None, page_size: SizeQ = None, name: str | None = None,
                   strict_name_search: Annotated[bool | None, Query(alias="strict-name-search")] = None,
                   archived: bool | None = None, sort_column: SortCol = None, sort_order: SortOrd = None) -> Response:
    ws = workspace_of(sim, principal)
    p, size = page_params(page, page_size, maximum=sim.config.max_page_size)
    rows = (t for t in ws.tags.values()
            if _name_ok(name, t["name"], strict_name_search) and (archived is None or t["archived"] == archived))
    return paged_response(sort_records(rows, sort_column, sort_order), p, size, public)


@router.get("/tags/{id}", operation_id="getTag")
async def get_tag(workspaceId: str, id: str, sim: SimDep, principal: Annotated[Principal, authorize("getTag")]) -> Response:
    tag = workspace_of(sim, principal).tags.get(id)
    if tag is None:
        raise not_found("Tag", id)
    return json_response(public(tag))


@router.post("/tags", operation_id="createNewTag", status_code=201)
async def create_tag(workspaceId: str, sim: SimDep, principal: Annotated[Principal, authorize("createNewTag")],
                     body: JsonBody) -> Response:
    return json_response(public(sim.ops.create_tag(workspace_of(sim, principal), body)), 201)


@router.put("/tags/{id}", operation_id="updateTag")
async def update_tag(workspaceId: str, id: str, sim: SimDep, principal: Annotated[Principal, authorize("updateTag")],
                     body: JsonBody) -> Response:
    return json_response(public(sim.ops.update_tag(workspace_of(sim, principal), id, body)))


@router.delete("/tags/{id}", operation_id="deleteTag")
async def delete_tag(workspaceId: str, id: str, sim: SimDep, principal: Annotated[Principal, authorize("deleteTag")]) -> Response:
    return json_response(public(sim.ops.delete_tag(workspace_of(sim, principal), id)))


# custom fields -----------------------------------------------------------------------------------

@router.get("/custom-fields", operation_id="ofWorkspace")
async def get_custom_fields(workspaceId: str, sim: SimDep, principal: Annotated[Principal, authorize("ofWorkspace")],
                            name: str | None = None, status: str | None = None,
                            entity_type: Annotated[str | None, Query(alias="entity-type")] = None) -> Response:
    ws = workspace_of(sim, principal)
    rows = [public(f) for f in ws.custom_fields.values()
            if text_match(name, f["name"]) and (status is None or f["status"] == status)
            and (entity_type is None or f["entityType"] == entity_type)]
    return json_response(rows)
