"""`GET /api/status`: the add-on's state for the caller's workspace."""

from __future__ import annotations

from fastapi import APIRouter

from clockify_core.access import UserDep
from clockify_core.deps import ProfileDep, SessionDep
from clockify_core.status.service import StatusRead, workspace_status

router = APIRouter(prefix="/api", tags=["status"])


@router.get("/status", summary="Installation, webhook coverage, inbox, jobs and sync of your workspace")
async def get_status(user: UserDep, session: SessionDep, profile: ProfileDep) -> StatusRead:
    return await workspace_status(session, user.installation, profile)
