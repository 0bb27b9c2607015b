"""The read-only (api_studio) or full (other tiers) API explorer behind the sidebar page.

The installation token never leaves the server: the browser names an operation and
its parameters, the backend checks them against the spec and the tier, calls Clockify
through the rate limiter, logs the call, and returns Clockify's answer. Owners and admins
call with the installation token; a member's call carries the member's own user token, so
Clockify applies the member's permissions (another user's e-mail or time entries: 403).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from clockify_core.access import UserDep
from clockify_core.client import ClockifyApiError
from clockify_core.deps import ProfileDep, RuntimeDep, SessionDep, SettingsDep
from clockify_core.errors import ClockifyError, Conflict, RateLimited
from clockify_core.explorer.service import OperationDetail, OperationSummary, detail, summarize
from clockify_core.installations.models import InstallationStatus
from clockify_core.installations.repository import installation_api
from clockify_core.openapi import bundled_index
from clockify_core.openapi.calls import check_policy, execute, find_operation, prepare_call, record
from clockify_core.openapi.models import ApiCall

router = APIRouter(prefix="/api/explorer", tags=["explorer"])


class ExecuteRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    operation_id: str = Field(alias="operationId", min_length=1, max_length=128)
    path_params: dict[str, str | int] = Field(default_factory=dict, alias="pathParams")
    query: dict[str, Any] = Field(default_factory=dict)
    body: Any = None


class ExecuteResult(BaseModel):
    operation_id: str
    method: str
    path: str
    status: int
    headers: dict[str, str]
    duration_ms: int
    body: Any
    truncated: bool


class ApiCallRead(BaseModel):
    id: int
    source: str
    user_id: str | None
    operation_id: str | None
    method: str
    path: str
    status: int | None
    duration_ms: int | None
    error: str | None
    created_at: datetime


@router.get("/operations", summary="Clockify operations, marked allowed or not for you on this tier")
async def list_operations(
    user: UserDep,
    profile: ProfileDep,
    q: str | None = Query(None, max_length=100, description="Search in id, path, summary and tag"),
    tag: str | None = Query(None, max_length=100),
) -> list[OperationSummary]:
    needle = (q or "").lower()
    out = []
    for operation in bundled_index().operations:
        if tag and operation.tag != tag:
            continue
        haystack = f"{operation.operation_id} {operation.path} {operation.summary} {operation.tag}".lower()
        if needle and needle not in haystack:
            continue
        out.append(summarize(operation, profile, is_admin=user.is_admin))
    return out


@router.get("/operations/{operation_id}", summary="One operation with its parameters and body schema")
async def get_operation(operation_id: str, user: UserDep, profile: ProfileDep) -> OperationDetail:
    index = bundled_index()
    return detail(index, find_operation(index, operation_id), profile, is_admin=user.is_admin)


@router.post(
    "/execute",
    summary="Call Clockify: admins with the installation token (never sent to the browser), members with their own",
    responses={
        403: {"description": "Not allowed on this tier or for this role (a member's read that Clockify "
                             "refuses is answered 200 with Clockify's 403 in status and body)"},
        409: {"description": "Add-on paused"},
        422: {"description": "A parameter or the body does not match the spec; errors[].location names it"},
        429: {"description": "The workspace's rate limit would make the call wait too long; see Retry-After"},
    },
)
async def execute_operation(
    request: ExecuteRequest, user: UserDep, profile: ProfileDep, runtime: RuntimeDep, session: SessionDep,
    settings: SettingsDep,
) -> ExecuteResult:
    operation = find_operation(bundled_index(), request.operation_id)
    check_policy(operation, profile, is_admin=user.is_admin)
    call = prepare_call(
        operation, workspace_id=user.workspace_id, path_params=request.path_params, query=request.query, body=request.body
    )
    if user.installation.status != InstallationStatus.ACTIVE:
        raise Conflict("the add-on is paused on this workspace")
    started = time.perf_counter()
    try:
        # A member never borrows the installation token's admin rights (see the module docstring).
        api = installation_api(runtime, user.installation, token=None if user.is_admin else user.token)
        result = await execute(api, call, max_wait=settings.ui.explorer_max_rate_wait)
    except ClockifyError as exc:
        # Refused by our rate limiter (429), Clockify unreachable or failing after the retries,
        # a host outside the allowlist: logged like any answer, then shown as a problem.
        record(session, workspace_id=user.workspace_id, user_id=user.user_id, source="explorer", call=call,
               status=_failed_status(exc), duration_ms=round((time.perf_counter() - started) * 1000),
               error=exc.detail)
        await session.commit()
        raise
    record(session, workspace_id=user.workspace_id, user_id=user.user_id, source="explorer", call=call,
           status=result.status, duration_ms=result.duration_ms)
    return ExecuteResult(
        operation_id=operation.operation_id, method=operation.method, path=call.path, status=result.status,
        headers=result.headers, duration_ms=result.duration_ms, body=result.body, truncated=result.truncated,
    )


def _failed_status(exc: ClockifyError) -> int | None:
    """The status a failed call is logged with: Clockify's when it answered, 429 when our
    limiter refused; none when nothing answered."""
    if isinstance(exc, ClockifyApiError):
        return exc.status_code
    return exc.status if isinstance(exc, RateLimited) else None


@router.get("/history", summary="Recent Clockify calls made for your workspace (explorer and flows)")
async def history(user: UserDep, session: SessionDep, limit: int = Query(50, ge=1, le=500)) -> list[ApiCallRead]:
    query = select(ApiCall).where(ApiCall.workspace_id == user.workspace_id)
    if not user.is_admin:
        # A member sees their own calls only: the others' paths and errors name ids and data
        # the member's own permissions may not show (flow runs are admin-only for the same reason).
        query = query.where(ApiCall.user_id == user.user_id)
    rows = await session.execute(query.order_by(ApiCall.id.desc()).limit(limit))
    return [ApiCallRead.model_validate(r, from_attributes=True) for r in rows.scalars()]
