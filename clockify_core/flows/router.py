"""`/api/flows`: flows of the caller's workspace. Any user of the workspace reads the flows;
admins (OWNER, ADMIN) write, dry-run and read the runs (a run holds the events and the API
answers it saw, data a member may not see). The workspace always comes from the user token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from clockify_core.access import AdminDep, UserDep
from clockify_core.db.base import RowId
from clockify_core.deps import RuntimeDep, SessionDep
from clockify_core.errors import ValidationFailed
from clockify_core.flows import service
from clockify_core.flows.schemas import (
    DryRunRequest,
    DryRunResult,
    FlowCreate,
    FlowRead,
    FlowRunPage,
    FlowRunRead,
    FlowUpdate,
)

router = APIRouter(prefix="/api/flows", tags=["flows"])

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Not an admin, or the tier does not allow a trigger or action (errors give locations)"},
    422: {"description": "Invalid definition; errors[].location names each bad path, operator or field"},
}


@router.get("", summary="List the workspace's flows")
async def list_flows(user: UserDep, session: SessionDep) -> list[FlowRead]:
    return [service.to_read(flow) for flow in await service.list_flows(session, user.workspace_id)]


@router.post("", status_code=201, summary="Create a flow", responses=_PROBLEMS)
async def create_flow(body: FlowCreate, user: AdminDep, runtime: RuntimeDep, session: SessionDep) -> FlowRead:
    flow = await service.create_flow(runtime, session, user.workspace_id, user.user_id, body)
    return service.to_read(flow)


@router.post("/dry-run", summary="Try an unsaved flow against an event, without side effects", responses=_PROBLEMS)
async def dry_run_definition(body: DryRunRequest, user: AdminDep, runtime: RuntimeDep, session: SessionDep) -> DryRunResult:
    if body.flow is None:
        raise ValidationFailed("body.flow: give the flow definition to try",
                               errors=[{"location": "body.flow", "message": "required", "kind": "missing"}])
    return await service.dry_run(runtime, session, user.workspace_id, body, None)


@router.get("/{flow_id}", summary="Read a flow")
async def read_flow(flow_id: str, user: UserDep, session: SessionDep) -> FlowRead:
    return service.to_read(await service.get_flow(session, user.workspace_id, flow_id))


@router.put("/{flow_id}", summary="Replace a flow's definition", responses=_PROBLEMS)
async def update_flow(
    flow_id: str, body: FlowUpdate, user: AdminDep, runtime: RuntimeDep, session: SessionDep
) -> FlowRead:
    return service.to_read(await service.update_flow(runtime, session, user.workspace_id, flow_id, body))


@router.delete("/{flow_id}", status_code=204, summary="Delete a flow and its runs")
async def delete_flow(flow_id: str, user: AdminDep, session: SessionDep) -> Response:
    await service.delete_flow(session, user.workspace_id, flow_id)
    return Response(status_code=204)


@router.post("/{flow_id}/enable", summary="Enable a flow (also clears an automatic disable)")
async def enable_flow(flow_id: str, user: AdminDep, session: SessionDep) -> FlowRead:
    return service.to_read(await service.set_enabled(session, user.workspace_id, flow_id, True))


@router.post("/{flow_id}/disable", summary="Disable a flow")
async def disable_flow(flow_id: str, user: AdminDep, session: SessionDep) -> FlowRead:
    return service.to_read(await service.set_enabled(session, user.workspace_id, flow_id, False))


@router.get("/{flow_id}/runs", summary="Runs of a flow, newest first (admins only)",
            responses={403: {"description": "Not an owner or admin"}})
async def list_runs(
    flow_id: str,
    user: AdminDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before_id: Annotated[RowId | None, Query(description="Only runs older than this id")] = None,
    status: Annotated[str | None, Query(description="QUEUED, SUCCEEDED, FAILED, ...")] = None,
    matched: bool | None = None,
) -> FlowRunPage:
    runs = await service.list_runs(
        session, user.workspace_id, flow_id, limit=limit, before_id=before_id, status=status, matched=matched
    )
    return FlowRunPage(
        runs=[service.run_to_read(run, with_event=False) for run in runs],
        next_before_id=runs[-1].id if len(runs) == limit else None,
    )


@router.get("/{flow_id}/runs/{run_id}", summary="One run, with its event (admins only)",
            responses={403: {"description": "Not an owner or admin"}})
async def read_run(flow_id: str, run_id: RowId, user: AdminDep, session: SessionDep) -> FlowRunRead:
    run = await service.get_run(session, user.workspace_id, flow_id, run_id)
    return service.run_to_read(run, with_event=True)


@router.post("/{flow_id}/dry-run", summary="Show what the flow would do for an event, without side effects",
             responses=_PROBLEMS)
async def dry_run_flow(
    flow_id: str, body: DryRunRequest, user: AdminDep, runtime: RuntimeDep, session: SessionDep
) -> DryRunResult:
    flow = await service.get_flow(session, user.workspace_id, flow_id)
    return await service.dry_run(runtime, session, user.workspace_id, body, flow)
