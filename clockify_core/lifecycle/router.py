"""`POST /lifecycle/{installed,deleted,settings-updated,status-changed}`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header

from clockify_core.deps import RuntimeDep, SessionDep
from clockify_core.errors import Unauthorized
from clockify_core.lifecycle import service
from clockify_core.lifecycle.schemas import (
    DeletedPayload,
    InstalledPayload,
    LifecycleAck,
    SettingsUpdatedPayload,
    StatusChangedPayload,
)

router = APIRouter(prefix="/lifecycle", tags=["lifecycle"])

_REFUSALS: dict[int | str, dict[str, Any]] = {401: {"description": "Missing or invalid lifecycle token"}, 403: {"description": "Payload ids differ from the token"}}


async def lifecycle_token(
    runtime: RuntimeDep,
    session: SessionDep,
    x_addon_lifecycle_token: Annotated[str | None, Header()] = None,
    clockify_signature: Annotated[str | None, Header()] = None,
) -> service.LifecycleToken:
    # Documented header first; some Clockify senders use Clockify-Signature (REFERENCE §4).
    token = x_addon_lifecycle_token or clockify_signature
    if not token:
        raise Unauthorized("X-Addon-Lifecycle-Token header is missing")
    return await service.lifecycle_token(runtime, session, token)


LifecycleAuth = Annotated[service.LifecycleToken, Depends(lifecycle_token)]


@router.post("/installed", responses=_REFUSALS, summary="Clockify installed the add-on on a workspace")
async def installed(
    payload: InstalledPayload, auth: LifecycleAuth, runtime: RuntimeDep, session: SessionDep
) -> LifecycleAck:
    await service.install(runtime, session, auth, payload)
    runtime.jobs_wakeup.set()
    return LifecycleAck(status="installed", workspace_id=payload.workspace_id)


@router.post("/deleted", responses=_REFUSALS, summary="Clockify uninstalled the add-on")
async def deleted(payload: DeletedPayload, auth: LifecycleAuth, runtime: RuntimeDep, session: SessionDep) -> LifecycleAck:
    await service.uninstall(runtime, session, auth, payload)
    runtime.jobs_wakeup.set()
    return LifecycleAck(status="deleted", workspace_id=payload.workspace_id)


@router.post("/status-changed", responses=_REFUSALS, summary="The add-on was enabled or disabled")
async def status_changed(
    payload: StatusChangedPayload, auth: LifecycleAuth, runtime: RuntimeDep, session: SessionDep
) -> LifecycleAck:
    await service.change_status(runtime, session, auth, payload)
    runtime.jobs_wakeup.set()
    runtime.inbox_wakeup.set()
    return LifecycleAck(status=payload.status.lower(), workspace_id=payload.workspace_id)


@router.post("/settings-updated", responses=_REFUSALS, summary="An admin changed the add-on's settings")
async def settings_updated(
    payload: SettingsUpdatedPayload, auth: LifecycleAuth, runtime: RuntimeDep, session: SessionDep
) -> LifecycleAck:
    await service.update_settings(runtime, session, auth, payload)
    return LifecycleAck(status="settings-updated", workspace_id=payload.workspace_id)
