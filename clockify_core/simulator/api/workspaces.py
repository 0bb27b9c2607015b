"""Workspaces, users and user groups."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from starlette.responses import Response

from clockify_core.errors import BadRequest
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
from clockify_core.simulator.model import membership_status

router = APIRouter()
PageQ = Annotated[int | None, Query(alias="page")]
SizeQ = Annotated[int | None, Query(alias="page-size")]


@router.get("/v1/user", operation_id="getLoggedUser")
async def get_logged_user(sim: SimDep, principal: Annotated[Principal, authorize("getLoggedUser")]) -> Response:
    ws = workspace_of(sim, principal)
    return json_response(public(ws.users[principal.user_id]))


@router.get("/v1/workspaces", operation_id="getWorkspacesOfUser")
async def get_workspaces(sim: SimDep, principal: Annotated[Principal, authorize("getWorkspacesOfUser")]) -> Response:
    return json_response([workspace_of(sim, principal).record()])


@router.get("/v1/workspaces/{workspaceId}", operation_id="getWorkspaceOfUser")
async def get_workspace(workspaceId: str, sim: SimDep,
                        principal: Annotated[Principal, authorize("getWorkspaceOfUser")]) -> Response:
    return json_response(workspace_of(sim, principal).record())


@router.get("/v1/workspaces/{workspaceId}/users", operation_id="getUsersOfWorkspace")
async def get_users(
    workspaceId: str, sim: SimDep, principal: Annotated[Principal, authorize("getUsersOfWorkspace")],
    page: PageQ = None, page_size: SizeQ = None, email: str | None = None, name: str | None = None,
    status: str | None = None, sort_column: Annotated[str | None, Query(alias="sort-column")] = None,
    sort_order: Annotated[str | None, Query(alias="sort-order")] = None,
) -> Response:
    ws = workspace_of(sim, principal)
    p, size = page_params(page, page_size, maximum=sim.config.max_page_size)
    users = (u for u in ws.users.values()
             if text_match(email, u["email"]) and text_match(name, u["name"])
             and (status in (None, "ALL") or membership_status(u) == status))
    return paged_response(sort_records(users, sort_column, sort_order), p, size, public)


@router.put("/v1/workspaces/{workspaceId}/users/{userId}", operation_id="updateUserStatus")
async def update_user_status(workspaceId: str, userId: str, sim: SimDep,
                             principal: Annotated[Principal, authorize("updateUserStatus")],
                             body: Annotated[dict[str, Any], Body()]) -> Response:
    ws = workspace_of(sim, principal)
    if body.get("status") not in ("ACTIVE", "INACTIVE"):
        raise BadRequest("status must be ACTIVE or INACTIVE", message="Invalid status", code=501)
    sim.ops.set_user_status(ws, userId, body["status"])
    return json_response(ws.record())


@router.get("/v1/workspaces/{workspaceId}/user-groups", operation_id="getUserGroups")
async def get_groups(
    workspaceId: str, sim: SimDep, principal: Annotated[Principal, authorize("getUserGroups")],
    page: PageQ = None, page_size: SizeQ = None, name: str | None = None,
    project_id: Annotated[str | None, Query(alias="project-id")] = None,
    sort_column: Annotated[str | None, Query(alias="sort-column")] = None,
    sort_order: Annotated[str | None, Query(alias="sort-order")] = None,
) -> Response:
    ws = workspace_of(sim, principal)
    p, size = page_params(page, page_size, maximum=sim.config.max_page_size)
    groups = (g for g in ws.user_groups.values() if text_match(name, g["name"]))
    return paged_response(sort_records(groups, sort_column, sort_order), p, size, public)


@router.post("/v1/workspaces/{workspaceId}/user-groups", operation_id="createUserGroup", status_code=201)
async def create_group(workspaceId: str, sim: SimDep, principal: Annotated[Principal, authorize("createUserGroup")],
                       body: Annotated[dict[str, Any], Body()]) -> Response:
    return json_response(public(sim.ops.create_group(workspace_of(sim, principal), body)), 201)


@router.put("/v1/workspaces/{workspaceId}/user-groups/{id}", operation_id="updateUserGroup")
async def update_group(workspaceId: str, id: str, sim: SimDep,
                       principal: Annotated[Principal, authorize("updateUserGroup")],
                       body: Annotated[dict[str, Any], Body()]) -> Response:
    return json_response(public(sim.ops.update_group(workspace_of(sim, principal), id, body)))


@router.delete("/v1/workspaces/{workspaceId}/user-groups/{id}", operation_id="deleteUserGroup")
async def delete_group(workspaceId: str, id: str, sim: SimDep,
                       principal: Annotated[Principal, authorize("deleteUserGroup")]) -> Response:
    return json_response(public(sim.ops.delete_group(workspace_of(sim, principal), id)))
