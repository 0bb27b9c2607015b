"""The operator API (`X-API-Key`): installations, dead letters and replay across workspaces."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from clockify_core.access import OperatorDep
from clockify_core.db.after_commit import after_commit
from clockify_core.db.base import RowId
from clockify_core.deps import ProfileDep, RuntimeDep, SessionDep
from clockify_core.installations.models import Installation
from clockify_core.installations.repository import require_installation
from clockify_core.status.service import EventRead, StatusRead, workspace_status
from clockify_core.webhooks import inbox
from clockify_core.webhooks.models import InboxEvent, InboxStatus

router = APIRouter(prefix="/api/operator", tags=["operator"])


class InstallationSummary(BaseModel):
    workspace_id: str
    addon_id: str
    status: str
    installed_at: datetime
    deleted_at: datetime | None


class ReplayRequest(BaseModel):
    workspace_id: str | None = None
    ids: list[RowId] | None = Field(None, max_length=10_000)


class ReplayResult(BaseModel):
    replayed: int


@router.get("/installations", summary="The installations this service knows, a page at a time")
async def list_installations(
    _: OperatorDep,
    session: SessionDep,
    request: Request,
    response: Response,
    limit: int = Query(500, ge=1, le=5000),
    after: str | None = Query(None, max_length=64, description="The last workspace id of the previous page"),
) -> list[InstallationSummary]:
    """By workspace id. A full page carries ``Link: <...>; rel="next"`` (RFC 8288) to the
    next one, so a fleet of any size is listed in bounded pieces."""
    stmt = select(Installation).order_by(Installation.workspace_id).limit(limit)
    if after is not None:
        stmt = stmt.where(Installation.workspace_id > after)
    page = [InstallationSummary.model_validate(r, from_attributes=True) for r in (await session.execute(stmt)).scalars()]
    if len(page) == limit:
        following = request.url.include_query_params(limit=limit, after=page[-1].workspace_id)
        response.headers["Link"] = f'<{following.path}?{following.query}>; rel="next"'
    return page


@router.get("/workspaces/{workspace_id}/status", summary="A workspace's status, as its admin sees it")
async def operator_status(workspace_id: str, _: OperatorDep, session: SessionDep, profile: ProfileDep) -> StatusRead:
    return await workspace_status(session, await require_installation(session, workspace_id), profile)


@router.get("/dead-letters", summary="Events that failed every attempt")
async def dead_letters(
    _: OperatorDep,
    session: SessionDep,
    workspace_id: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> list[EventRead]:
    stmt = select(InboxEvent).where(InboxEvent.status == InboxStatus.DEAD).order_by(InboxEvent.id).limit(limit)
    if workspace_id is not None:
        stmt = stmt.where(InboxEvent.workspace_id == workspace_id)
    return [EventRead.model_validate(e, from_attributes=True) for e in (await session.execute(stmt)).scalars()]


@router.post("/dead-letters/replay", summary="Queue dead letters again with a fresh attempt budget")
async def replay(body: ReplayRequest, _: OperatorDep, session: SessionDep, runtime: RuntimeDep) -> ReplayResult:
    count = await inbox.replay_dead(session, workspace_id=body.workspace_id, ids=body.ids)
    after_commit(session, runtime.inbox_wakeup.set)
    return ReplayResult(replayed=count)
