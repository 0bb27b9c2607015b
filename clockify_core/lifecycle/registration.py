"""Registering the events the manifest could not declare, through the Webhooks API.

The job reconciles rather than replays: it registers every event of the profile that
no manifest webhook delivers (the INSTALLED body decides, not the cap we serve now: the
published manifest version may differ), skips events that already have an active
subscription, removes stale registrations (from before a reinstall) at Clockify first,
and records a refusal (plan limits, permissions) on the subscription with Clockify's
reason instead of failing the installation.

A delete answered 401, 403 or 404 means the webhook is no longer ours to remove: Clockify
drops an add-on's webhooks and revokes its token with the uninstall.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import select, update

from clockify_core.catalog import event_slug, webhook_path
from clockify_core.client import ClockifyApiError, WorkspaceApi, decode_json
from clockify_core.client.errors import body_excerpt
from clockify_core.jobs.models import Job
from clockify_core.jobs.worker import JobContext
from clockify_core.lifecycle.models import (
    SubscriptionSource,
    SubscriptionStatus,
    WebhookSubscription,
)
from clockify_core.lifecycle.repository import (
    get_installation,
    installation_api,
    require_installation,
)
from clockify_core.runtime import Runtime
from clockify_core.security.crypto import token_digest

log = structlog.get_logger(__name__)

GONE = frozenset({401, 403, 404})  # revoked or dropped with an uninstall, or never ours


async def delete_webhook(api: WorkspaceApi, webhook_id: str) -> int:
    """Remove one registration at Clockify; returns the status. 5xx raises, so the job retries;
    any other refusal is logged and not retried (repeating it would change nothing)."""
    response = await api.request("DELETE", f"/v1/workspaces/{api.workspace_id}/webhooks/{webhook_id}")
    if response.status_code >= 500:
        raise ClockifyApiError.from_response(response)
    if not response.is_success and response.status_code not in GONE:
        log.warning("webhooks.delete_refused", workspace_id=api.workspace_id, status=response.status_code)
    return response.status_code


async def _runtime_subscriptions(runtime: Runtime, workspace_id: str) -> dict[str, WebhookSubscription]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(WebhookSubscription).where(
                WebhookSubscription.workspace_id == workspace_id,
                WebhookSubscription.source == SubscriptionSource.RUNTIME,
            )
        )
        return {row.event_type: row for row in rows.scalars()}


async def _save(ctx: JobContext, event: str, **values: Any) -> None:
    """Store what Clockify answered, only while the job runs: after an uninstall cancelled
    it (and purged the workspace) nothing is written (:meth:`JobContext.transaction`)."""
    workspace_id = ctx.workspace_id
    async with ctx.transaction() as session:
        existing = await session.scalar(
            select(WebhookSubscription).where(
                WebhookSubscription.workspace_id == workspace_id,
                WebhookSubscription.source == SubscriptionSource.RUNTIME,
                WebhookSubscription.event_type == event,
            )
        )
        if existing is None:
            session.add(WebhookSubscription(
                workspace_id=workspace_id, event_type=event, path=webhook_path(event),
                source=SubscriptionSource.RUNTIME, **values,
            ))
        else:
            for key, value in values.items():
                setattr(existing, key, value)


async def register_webhooks(runtime: Runtime, ctx: JobContext) -> None:
    workspace_id = ctx.workspace_id
    settings = runtime.settings
    async with runtime.sessions() as session:
        installation = await require_installation(session, workspace_id, active=True)
    # Checked before every call: an uninstall cancels the job, and then it calls Clockify no more.
    api = installation_api(runtime, installation, before_send=ctx.ensure_live)
    current = await _runtime_subscriptions(runtime, workspace_id)

    for event, sub in current.items():
        if sub.status == SubscriptionStatus.REMOVED and sub.clockify_webhook_id:
            status = await delete_webhook(api, sub.clockify_webhook_id)
            log.info("webhooks.stale_removed", workspace_id=workspace_id, webhook_event=event, status=status)
            await _save(ctx, event, clockify_webhook_id=None)

    async with runtime.sessions() as session:
        delivered = set(
            (
                await session.scalars(
                    select(WebhookSubscription.event_type).where(
                        WebhookSubscription.workspace_id == workspace_id,
                        WebhookSubscription.source == SubscriptionSource.MANIFEST,
                        WebhookSubscription.status == SubscriptionStatus.ACTIVE,
                    )
                )
            ).all()
        )
    registered = refused = 0
    for event in (e for e in runtime.profile.events if e not in delivered):
        existing = current.get(event)
        if existing is not None and existing.status == SubscriptionStatus.ACTIVE and existing.token_digest:
            registered += 1
            continue
        body = {
            "name": event_slug(event)[:30],
            "url": settings.base_url.rstrip("/") + webhook_path(event),
            "webhookEvent": event,
            "triggerSource": [workspace_id],
            "triggerSourceType": "WORKSPACE_ID",
        }
        response = await api.request("POST", f"/v1/workspaces/{workspace_id}/webhooks", json=body)
        if response.status_code >= 500:
            raise ClockifyApiError.from_response(response)  # the job is retried with backoff
        if response.is_success:
            data = decode_json(response)
            token = data.get("authToken") if isinstance(data, dict) else None
            if not isinstance(token, str) or not token:
                raise ClockifyApiError.from_response(response)
            await _save(
                ctx, event, status=SubscriptionStatus.ACTIVE, error=None,
                token_encrypted=runtime.cipher.encrypt(token), token_digest=token_digest(token),
                clockify_webhook_id=str(data.get("id") or "") or None,
            )
            registered += 1
        else:
            reason = f"Clockify refused the registration: HTTP {response.status_code} {body_excerpt(response)}"
            await _save(ctx, event, status=SubscriptionStatus.REFUSED, error=reason[:1000],
                        token_encrypted=None, token_digest=None)
            refused += 1
            log.warning("webhooks.registration_refused", workspace_id=workspace_id, webhook_event=event, status=response.status_code)
        ctx.report(registered=registered, refused=refused)
    ctx.report(registered=registered, refused=refused)


async def unregister_webhooks(runtime: Runtime, ctx: JobContext) -> None:
    """After an uninstall (or a reinstall that moved events to the manifest): remove what we
    registered. Clockify drops an add-on's webhooks and revokes its token with the uninstall,
    so 401/403/404 count as already gone, and a 401 ends the attempt."""
    workspace_id = ctx.workspace_id
    ids = [str(i) for i in ctx.params.get("webhook_ids", [])]
    encrypted = ctx.params.get("token")
    removed = gone = 0
    if isinstance(encrypted, str) and ids:
        async with runtime.sessions() as session:
            installation = await get_installation(session, workspace_id)
        if installation is not None:
            api = installation_api(runtime, installation, token=runtime.cipher.decrypt(encrypted))
            for position, webhook_id in enumerate(ids):
                status = await delete_webhook(api, webhook_id)
                if status == 401:
                    # The token went with the uninstall, and with it the add-on's webhooks.
                    gone += len(ids) - position
                    break
                removed += status < 300
                gone += status in GONE
    ctx.report(removed=removed, already_gone=gone, requested=len(ids))
    # The job row outlives the installation; do not keep a token in it.
    async with runtime.sessions.begin() as session:
        await session.execute(update(Job).where(Job.id == ctx.job.id).values(params={"webhook_ids": ids}))
