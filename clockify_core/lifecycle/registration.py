"""Registering the events the manifest could not declare, through the Webhooks API.

The job reconciles rather than replays: it registers every event of the profile that
no manifest webhook delivers (the INSTALLED body decides, not the cap we serve now: the
published manifest version may differ), skips events that already have an active
subscription, removes stale registrations (from before a reinstall) at Clockify first,
and records a refusal (plan limits, permissions) on the subscription with Clockify's
reason instead of failing the installation.

It spends only what the workspace's plan allows (docs/scaling.md, "Free-plan
workspaces"). INSTALLED queues it behind the first bootstrap, whose first request reads
the workspace record and with it the plan (``installations.subscription_plan``), so it
knows the plan without a request of its own, and the bootstrap has the budget first (a
plan still unknown, e.g. an unreadable workspace record, counts as paid). On
the Free plan (30 requests an hour for the whole workspace, 3 workspace webhooks) it
registers the first :data:`FREE_PLAN_WEBHOOKS` events in the profile's order (the
busiest first) and leaves the rest to the scheduled syncs; they are registered when the
plan changes (the sync that reads a new plan queues this job again). Calls go through the
plan's rate budget; when it has no room (a limiter wait over :data:`RATE_WAIT_SECONDS`)
or Clockify answers 429, the job is deferred until the budget has refilled instead of
waiting in a job loop (:meth:`~clockify_core.jobs.worker.JobContext.defer`: no attempt
spent), and the next run skips what is registered already.

A delete answered 401, 403 or 404 means the webhook is no longer ours to remove: Clockify
drops an add-on's webhooks and revokes its token with the uninstall.
"""

from __future__ import annotations

from typing import Any

import httpx
import structlog
from sqlalchemy import select, update

from clockify_core.catalog import FREE_PLAN, event_slug, webhook_path
from clockify_core.client import ClockifyApiError, WorkspaceApi, decode_json
from clockify_core.client.errors import body_excerpt
from clockify_core.errors import RateLimited
from clockify_core.installations.models import (
    SubscriptionSource,
    SubscriptionStatus,
    WebhookSubscription,
)
from clockify_core.installations.repository import (
    get_installation,
    installation_api,
    require_installation,
)
from clockify_core.jobs.models import Job
from clockify_core.jobs.worker import JobContext
from clockify_core.runtime import Runtime
from clockify_core.security.crypto import token_digest

log = structlog.get_logger(__name__)

GONE = frozenset({401, 403, 404})  # revoked or dropped with an uninstall, or never ours
# Workspace webhooks Clockify keeps on the Free plan (docs/clockify.md, "Webhooks").
FREE_PLAN_WEBHOOKS = 3
# A longer wait for the workspace's rate budget defers the job: a job loop never sleeps on it.
RATE_WAIT_SECONDS = 5.0
DEFAULT_DEFER_SECONDS = 60.0  # a 429 without Retry-After


async def delete_webhook(api: WorkspaceApi, ctx: JobContext, webhook_id: str) -> int:
    """Remove one registration at Clockify; returns the status. 5xx raises, so the job retries;
    any other refusal is logged and not retried (repeating it would change nothing)."""
    response = await _send(api, ctx, "DELETE", f"/v1/workspaces/{api.workspace_id}/webhooks/{webhook_id}")
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


async def _send(api: WorkspaceApi, ctx: JobContext, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One call within the workspace's rate budget; the job is deferred when the budget has no
    room, or when Clockify answered 429 after the client's retries."""
    try:
        response = await api.request(method, path, max_wait=RATE_WAIT_SECONDS, **kwargs)
    except RateLimited as exc:
        await ctx.defer(float(exc.extensions.get("retry_after", DEFAULT_DEFER_SECONDS)), exc.detail)
    if response.status_code == 429:
        error = ClockifyApiError.from_response(response)
        await ctx.defer(error.retry_after or DEFAULT_DEFER_SECONDS, error.detail)
    return response


async def register_webhooks(runtime: Runtime, ctx: JobContext) -> None:
    workspace_id = ctx.workspace_id
    settings = runtime.settings
    async with runtime.sessions() as session:
        installation = await require_installation(session, workspace_id, active=True)
    free = installation.subscription_plan == FREE_PLAN
    # Checked before every call: an uninstall cancels the job, and then it calls Clockify no more.
    api = installation_api(runtime, installation, before_send=ctx.ensure_live)
    current = await _runtime_subscriptions(runtime, workspace_id)

    for event, sub in current.items():
        if sub.status == SubscriptionStatus.REMOVED and sub.clockify_webhook_id:
            status = await delete_webhook(api, ctx, sub.clockify_webhook_id)
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
    wanted = [e for e in runtime.profile.events if e not in delivered]
    active = {e for e in wanted if _active(current.get(e))}
    # On the Free plan: the busiest events first, as many as Clockify keeps (registered ones count).
    room = max(0, FREE_PLAN_WEBHOOKS - len(active)) if free else len(wanted)
    todo = [e for e in wanted if e not in active][:room]
    registered, refused = len(active), 0
    ctx.report(registered=registered, refused=refused, left_to_sync=len(wanted) - len(active) - len(todo))
    for event in todo:
        body = {
            "name": event_slug(event)[:30],
            "url": settings.base_url.rstrip("/") + webhook_path(event),
            "webhookEvent": event,
            "triggerSource": [workspace_id],
            "triggerSourceType": "WORKSPACE_ID",
        }
        response = await _send(api, ctx, "POST", f"/v1/workspaces/{workspace_id}/webhooks", json=body)
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


def _active(sub: WebhookSubscription | None) -> bool:
    return sub is not None and sub.status == SubscriptionStatus.ACTIVE and bool(sub.token_digest)


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
                status = await delete_webhook(api, ctx, webhook_id)
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
