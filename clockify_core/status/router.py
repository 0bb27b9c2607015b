"""`GET /api/status`: the add-on's state for the caller's workspace."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query

from clockify_core.access import UserContext, user_context, verify_user_token
from clockify_core.deps import ProfileDep, RuntimeDep, SessionDep
from clockify_core.status.service import StatusRead, workspace_status

router = APIRouter(prefix="/api", tags=["status"])


async def status_user(
    runtime: RuntimeDep,
    session: SessionDep,
    auth_token: Annotated[
        str | None, Query(description="The user token of Clockify's iframe URL")
    ] = None,
    x_addon_token: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> UserContext:
    """The iframe's token (issue 4 item 7) as well as the headers every ``/api`` route takes.

    Only this read-only route takes it from the query: Clockify hands it to the sidebar
    that way. The access log never writes it (``observability.logging.redact_query``).
    A header, when sent, wins.
    """
    if auth_token and auth_token.strip() and not x_addon_token and authorization is None:
        return await verify_user_token(runtime, session, auth_token.strip())
    return await user_context(runtime, session, x_addon_token, authorization)


@router.get(
    "/status", summary="Installation, webhook coverage, inbox, jobs and sync of your workspace"
)
async def get_status(
    user: Annotated[UserContext, Depends(status_user)], session: SessionDep, profile: ProfileDep
) -> StatusRead:
    return await workspace_status(session, user.installation, profile)
