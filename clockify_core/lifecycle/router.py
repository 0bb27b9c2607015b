"""`POST /lifecycle/{installed,deleted,settings-updated,status-changed}`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header

from clockify_core.db.after_commit import after_commit
from clockify_core.db.base import utcnow
from clockify_core.deps import RuntimeDep, SessionDep
from clockify_core.errors import TokenInvalid, Unauthorized
from clockify_core.lifecycle import service
from clockify_core.lifecycle.schemas import (
    DeletedPayload,
    InstalledPayload,
    LifecycleAck,
    SettingsUpdatedPayload,
    StatusChangedPayload,
)
from clockify_core.sync import scheduler

router = APIRouter(prefix="/lifecycle", tags=["lifecycle"])

_REFUSALS: dict[int | str, dict[str, Any]] = {401: {"description": "Missing or invalid lifecycle token"}, 403: {"description": "Payload ids differ from the token"}}


async def lifecycle_token(
    runtime: RuntimeDep,
    session: SessionDep,
    x_addon_lifecycle_token: Annotated[str | None, Header()] = None,
    clockify_signature: Annotated[str | None, Header()] = None,
) -> service.LifecycleToken:
    # Documented header first; some Clockify senders use Clockify-Signature (docs/clockify.md#lifecycle).
    token = x_addon_lifecycle_token or clockify_signature
    if not token:
        raise Unauthorized("X-Addon-Lifecycle-Token header is missing")
    return await service.lifecycle_token(runtime, session, token)


LifecycleAuth = Annotated[service.LifecycleToken, Depends(lifecycle_token)]


def _used_once(event: str, *, repeatable: bool = False) -> Any:
    """The verified token, recorded as used for ``event`` (docs/ARCHITECTURE.md, lifecycle).

    A token accepted before is refused with 401, except where ``repeatable``: INSTALLED
    lets it through marked not fresh, and only a repeat that changes nothing passes there.
    """

    async def dependency(auth: LifecycleAuth, runtime: RuntimeDep, session: SessionDep) -> service.LifecycleToken:
        used = await service.consume(session, auth, event, leeway_seconds=runtime.settings.signing.leeway_seconds)
        if not used.fresh and not repeatable:
            raise TokenInvalid("this lifecycle token was used already")
        return used

    return Depends(dependency)


InstalledAuth = Annotated[service.LifecycleToken, _used_once("INSTALLED", repeatable=True)]
DeletedAuth = Annotated[service.LifecycleToken, _used_once("DELETED")]
StatusAuth = Annotated[service.LifecycleToken, _used_once("STATUS_CHANGED")]
SettingsAuth = Annotated[service.LifecycleToken, _used_once("SETTINGS_UPDATED")]


@router.post("/installed", responses=_REFUSALS, summary="Clockify installed the add-on on a workspace")
async def installed(
    payload: InstalledPayload, auth: InstalledAuth, runtime: RuntimeDep, session: SessionDep
) -> LifecycleAck:
    await service.install(runtime, session, auth, payload)
    after_commit(session, runtime.jobs_wakeup.set)
    return LifecycleAck(status="installed", workspace_id=payload.workspace_id)


@router.post("/deleted", responses=_REFUSALS, summary="Clockify uninstalled the add-on")
async def deleted(payload: DeletedPayload, auth: DeletedAuth, runtime: RuntimeDep, session: SessionDep) -> LifecycleAck:
    await service.uninstall(runtime, session, auth, payload)
    after_commit(session, runtime.jobs_wakeup.set)
    return LifecycleAck(status="deleted", workspace_id=payload.workspace_id)


@router.post("/status-changed", responses=_REFUSALS, summary="The add-on was enabled or disabled")
async def status_changed(
    payload: StatusChangedPayload, auth: StatusAuth, runtime: RuntimeDep, session: SessionDep
) -> LifecycleAck:
    await service.change_status(session, auth, payload)
    after_commit(session, runtime.jobs_wakeup.set)
    after_commit(session, runtime.inbox_wakeup.set)
    return LifecycleAck(status=payload.status.lower(), workspace_id=payload.workspace_id)


@router.post("/settings-updated", responses=_REFUSALS, summary="An admin changed the add-on's settings")
async def settings_updated(
    payload: SettingsUpdatedPayload, auth: SettingsAuth, runtime: RuntimeDep, session: SessionDep
) -> LifecycleAck:
    installation = await service.update_settings(session, auth, payload)
    # A shorter sync interval applies from now, not after the run planned under the old one.
    await scheduler.replan(session, runtime.settings.sync, installation, utcnow())
    return LifecycleAck(status="settings-updated", workspace_id=payload.workspace_id)
