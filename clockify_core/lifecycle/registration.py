"""Registering the events the manifest could not declare, through the Webhooks API.

The job reconciles rather than replays: events that already have an active
subscription are skipped, stale registrations (from before a reinstall) are removed
at Clockify first, and a refusal (plan limits, permissions) is recorded on the
subscription with Clockify's reason instead of failing the installation.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import select, update

from clockify_core.catalog import event_slug, webhook_path
from clockify_core.client import ClockifyApiError, decode_json
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
from clockify_core.manifest.builder import runtime_webhook_events
from clockify_core.runtime import Runtime
from clockify_core.security.crypto import token_digest

log = structlog.get_logger(__name__)


async def _runtime_subscriptions(runtime: Runtime, workspace_id: str) -> dict[str, WebhookSubscription]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(WebhookSubscription).where(
                WebhookSubscription.workspace_id == workspace_id,
                WebhookSubscription.source == SubscriptionSource.RUNTIME,
            )
        )
        return {row.event_type: row for row in rows.scalars()}


async def _save(runtime: Runtime, workspace_id: str, event: str, **values: Any) -> None:
    async with runtime.sessions.begin() as session:
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
    api = installation_api(runtime, installation)
    current = await _runtime_subscriptions(runtime, workspace_id)

    for event, sub in current.items():
        if sub.status == SubscriptionStatus.REMOVED and sub.clockify_webhook_id:
            response = await api.request("DELETE", f"/v1/workspaces/{workspace_id}/webhooks/{sub.clockify_webhook_id}")
            log.info("webhooks.stale_removed", workspace_id=workspace_id, event=event, status=response.status_code)
            await _save(runtime, workspace_id, event, clockify_webhook_id=None)

    registered = refused = 0
    for event in runtime_webhook_events(runtime.profile, settings.manifest.webhook_cap):
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
                runtime, workspace_id, event, status=SubscriptionStatus.ACTIVE, error=None,
                token_encrypted=runtime.cipher.encrypt(token), token_digest=token_digest(token),
                clockify_webhook_id=str(data.get("id") or "") or None,
            )
            registered += 1
        else:
            reason = f"Clockify refused the registration: HTTP {response.status_code} {body_excerpt(response)}"
            await _save(runtime, workspace_id, event, status=SubscriptionStatus.REFUSED, error=reason[:1000],
                        token_encrypted=None, token_digest=None)
            refused += 1
            log.warning("webhooks.registration_refused", workspace_id=workspace_id, event=event, status=response.status_code)
        ctx.report(registered=registered, refused=refused)
    ctx.report(registered=registered, refused=refused)


async def unregister_webhooks(runtime: Runtime, ctx: JobContext) -> None:
    """After an uninstall: try to remove what we registered. Clockify revokes the token with
    the uninstall, so a 401/403 ends the attempt (Clockify then owns the cleanup)."""
    workspace_id = ctx.workspace_id
    ids = [str(i) for i in ctx.params.get("webhook_ids", [])]
    encrypted = ctx.params.get("token")
    removed = 0
    if isinstance(encrypted, str) and ids:
        async with runtime.sessions() as session:
            installation = await get_installation(session, workspace_id)
        if installation is not None:
            api = installation_api(runtime, installation, token=runtime.cipher.decrypt(encrypted))
            for webhook_id in ids:
                response = await api.request("DELETE", f"/v1/workspaces/{workspace_id}/webhooks/{webhook_id}")
                if response.status_code in (401, 403):
                    ctx.report(outcome="token revoked by Clockify")
                    break
                removed += response.is_success
    ctx.report(removed=removed, requested=len(ids))
    # The job row outlives the installation; do not keep a token in it.
    async with runtime.sessions.begin() as session:
        await session.execute(update(Job).where(Job.id == ctx.job.id).values(params={"webhook_ids": ids}))
