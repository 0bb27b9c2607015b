"""Operator HTTP API for pulls (`X-API-Key`): queue bootstrap, sync and backfill; read jobs.

Routes live under ``/api/operator`` beside the other operator routes and share their
key check (constant-time; refused when ``OPERATOR_API_KEY`` is unset).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from clockify_core.access import OperatorDep
from clockify_core.db.after_commit import after_commit
from clockify_core.db.base import RowId
from clockify_core.deps import ProfileDep, RuntimeDep, SessionDep
from clockify_core.errors import NotFound
from clockify_core.jobs.models import Job, JobKind
from clockify_core.sync import service, state
from clockify_core.sync.models import WORKSPACE_KIND, SyncState
from clockify_core.sync.schemas import JobRead, SyncRead
from clockify_core.sync.service import Window

router = APIRouter(prefix="/api/operator", tags=["operator: sync"])


class OperatorJobRead(JobRead):
    workspace_id: str
    params: dict[str, Any]
    cursor: dict[str, Any]
    run_after: datetime


class Queued(BaseModel):
    workspace_id: str
    job_id: int


class SyncRequest(BaseModel):
    reference: bool = Field(False, description="Re-list reference data now instead of when it is due")


class SyncAllRequest(SyncRequest):
    workspace_ids: list[str] = Field(default_factory=list, max_length=10_000, description="Default: every ACTIVE one")


class BackfillRequest(BaseModel):
    # datetime first: as `date | datetime`, "2024-01-01T00:00:00+05:00" would validate as a date and lose its offset.
    since: datetime | date = Field(description="First day (UTC) of time entries to pull, from 2000-01-01")
    until: datetime | date | None = Field(None, description="Day after the last one; default now")
    window: Window = Field("month", description="Pull and checkpoint in windows of this size")


class WorkspaceSyncRead(BaseModel):
    workspace_id: str
    parked_until: datetime | None
    parked_reason: str | None
    next_run_at: datetime | None
    consecutive_failures: int
    kinds: list[SyncRead]


@router.post("/workspaces/{workspace_id}/bootstrap", status_code=202, summary="Queue a bootstrap of one workspace")
async def queue_bootstrap(workspace_id: str, _: OperatorDep, session: SessionDep, profile: ProfileDep,
                          runtime: RuntimeDep) -> Queued:
    job_id = await service.queue_pull(session, profile, workspace_id, JobKind.BOOTSTRAP)
    after_commit(session, runtime.jobs_wakeup.set)
    return Queued(workspace_id=workspace_id, job_id=job_id)


@router.post("/workspaces/{workspace_id}/sync", status_code=202, summary="Queue an incremental sync now")
async def queue_sync(workspace_id: str, _: OperatorDep, session: SessionDep, profile: ProfileDep,
                     runtime: RuntimeDep, body: SyncRequest | None = None) -> Queued:
    params = {"reason": "operator", **({"reference": True} if body and body.reference else {})}
    job_id = await service.queue_pull(session, profile, workspace_id, JobKind.SYNC, params)
    after_commit(session, runtime.jobs_wakeup.set)
    return Queued(workspace_id=workspace_id, job_id=job_id)


@router.post("/sync", status_code=202, summary="Queue an incremental sync of every ACTIVE workspace (or those listed)")
async def queue_sync_all(body: SyncAllRequest, _: OperatorDep, session: SessionDep, profile: ProfileDep,
                         runtime: RuntimeDep) -> list[Queued]:
    params = {"reason": "operator", **({"reference": True} if body.reference else {})}
    queued = [
        Queued(workspace_id=ws, job_id=await service.queue_pull(session, profile, ws, JobKind.SYNC, params))
        for ws in await service.active_workspaces(session, body.workspace_ids)
    ]
    after_commit(session, runtime.jobs_wakeup.set)
    return queued


@router.post("/workspaces/{workspace_id}/backfill", status_code=202, summary="Queue a backfill of time entries")
async def queue_backfill(workspace_id: str, body: BackfillRequest, _: OperatorDep, session: SessionDep,
                         profile: ProfileDep, runtime: RuntimeDep) -> Queued:
    params = service.backfill_params(body.since, body.until, body.window)
    job_id = await service.queue_pull(session, profile, workspace_id, JobKind.BACKFILL, params)
    after_commit(session, runtime.jobs_wakeup.set)
    return Queued(workspace_id=workspace_id, job_id=job_id)


@router.get("/jobs", summary="Jobs, newest first, with their progress")
async def jobs(
    _: OperatorDep, session: SessionDep, workspace_id: str | None = None, kind: str | None = None,
    status: str | None = None, limit: int = Query(50, ge=1, le=1000),
) -> list[OperatorJobRead]:
    rows = await service.list_jobs(session, workspace_id=workspace_id, kind=kind, status=status, limit=limit)
    return [OperatorJobRead.model_validate(j, from_attributes=True) for j in rows]


@router.get("/jobs/{job_id}", summary="One job")
async def job(job_id: RowId, _: OperatorDep, session: SessionDep) -> OperatorJobRead:
    found = await session.get(Job, job_id)
    if found is None:
        raise NotFound(f"job {job_id} does not exist")
    return OperatorJobRead.model_validate(found, from_attributes=True)


@router.post("/jobs/{job_id}/cancel", summary="Cancel a queued or running job")
async def cancel(job_id: RowId, _: OperatorDep, session: SessionDep) -> OperatorJobRead:
    return OperatorJobRead.model_validate(await service.cancel_job(session, job_id), from_attributes=True)


@router.get("/workspaces/{workspace_id}/sync-state", summary="Watermarks, counts, schedule and parking")
async def sync_state(workspace_id: str, _: OperatorDep, session: SessionDep) -> WorkspaceSyncRead:
    await service.installation_status(session, workspace_id)
    rows = (await session.execute(
        select(SyncState).where(SyncState.workspace_id == workspace_id).order_by(SyncState.kind)
    )).scalars().all()
    ws_row = next((r for r in rows if r.kind == WORKSPACE_KIND), None)
    return WorkspaceSyncRead(
        workspace_id=workspace_id,
        parked_until=ws_row.parked_until if ws_row else None,
        parked_reason=ws_row.parked_reason if ws_row else None,
        next_run_at=ws_row.next_run_at if ws_row else None,
        consecutive_failures=ws_row.consecutive_failures if ws_row else 0,
        kinds=[SyncRead.model_validate(r, from_attributes=True) for r in rows if r.kind != WORKSPACE_KIND],
    )


@router.post("/workspaces/{workspace_id}/unpark", summary="Let a parked workspace sync again")
async def unpark(workspace_id: str, _: OperatorDep, session: SessionDep) -> WorkspaceSyncRead:
    await service.installation_status(session, workspace_id)
    await state.unpark(session, workspace_id)
    return await sync_state(workspace_id, None, session)
