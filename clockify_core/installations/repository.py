"""Reading installations and their webhooks, and turning one into an API client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core.catalog import FREE_PLAN
from clockify_core.config import RateLimitConfig
from clockify_core.errors import Conflict, NotFound
from clockify_core.installations.models import (
    Installation,
    InstallationStatus,
    SubscriptionStatus,
    WebhookSubscription,
)
from clockify_core.ratelimit import Limit, free_plan_limit

if TYPE_CHECKING:
    from clockify_core.client import WorkspaceApi
    from clockify_core.runtime import Runtime


async def get_installation(session: AsyncSession, workspace_id: str) -> Installation | None:
    return await session.get(Installation, workspace_id)


async def require_installation(session: AsyncSession, workspace_id: str, *, active: bool = False) -> Installation:
    installation = await get_installation(session, workspace_id)
    if installation is None or installation.status == InstallationStatus.DELETED:
        raise NotFound("The add-on is not installed on this workspace")
    if active and installation.status != InstallationStatus.ACTIVE:
        raise Conflict("The add-on is inactive on this workspace; Clockify paused it")
    return installation


async def subscriptions(session: AsyncSession, workspace_id: str) -> list[WebhookSubscription]:
    result = await session.execute(
        select(WebhookSubscription).where(WebhookSubscription.workspace_id == workspace_id).order_by(WebhookSubscription.id)
    )
    return list(result.scalars())


async def subscription_for_token(
    session: AsyncSession, digest: str, path: str
) -> tuple[WebhookSubscription, Installation] | None:
    row = (
        await session.execute(
            select(WebhookSubscription, Installation)
            .join(Installation, Installation.workspace_id == WebhookSubscription.workspace_id)
            .where(
                WebhookSubscription.token_digest == digest,
                WebhookSubscription.path == path,
                WebhookSubscription.status == SubscriptionStatus.ACTIVE,
                Installation.status != InstallationStatus.DELETED,
            )
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


def plan_limit(config: RateLimitConfig, plan: str | None) -> Limit | None:
    """The rate budget of a workspace on ``plan``: ``free_plan_limit`` on the Free plan, else
    None (the limiter's default, Clockify's per-second rate for paid plans)."""
    return free_plan_limit(config) if plan == FREE_PLAN else None


def installation_api(
    runtime: Runtime,
    installation: Installation,
    *,
    token: str | None = None,
    before_send: Callable[[], Awaitable[None]] | None = None,
) -> WorkspaceApi:
    """A client acting with the installation token (or ``token``) on the URLs Clockify gave for it.

    ``before_send`` is awaited before every request attempt: a job passes
    :meth:`~clockify_core.jobs.worker.JobContext.ensure_live`, so it stops calling once
    an uninstall has cancelled it.

    The rate budget follows the installation's plan: a Free-plan workspace gets
    ``free_plan_limit`` (30 requests an hour) for every caller, because the limiter's
    bucket is shared by the whole workspace and one paid-rate caller would drain it.
    """
    if token is None:
        if not installation.auth_token_encrypted:
            raise NotFound("The installation has no token (uninstalled)")
        token = runtime.cipher.decrypt(installation.auth_token_encrypted)
    backend_url = installation.backend_url or installation.api_url
    if not backend_url:
        raise NotFound("The installation has no API URL")
    return runtime.clockify.for_workspace(
        installation.workspace_id,
        token,
        backend_url=backend_url,
        reports_url=installation.reports_url,
        pto_url=installation.pto_url,
        addon_key=runtime.settings.signing.addon_key,
        rate_limit=plan_limit(runtime.settings.rate_limit, installation.subscription_plan),
        before_send=before_send,
    )
