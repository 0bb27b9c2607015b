"""What a workspace admin (and an operator) sees of one workspace's add-on."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core.installations.models import Installation, SubscriptionStatus
from clockify_core.installations.repository import subscriptions
from clockify_core.jobs.models import Job
from clockify_core.sync.models import SyncState
from clockify_core.sync.schemas import JobRead, SyncRead
from clockify_core.tiers import ServiceProfile
from clockify_core.webhooks import inbox
from clockify_core.webhooks.models import InboxEvent


class InstallationRead(BaseModel):
    status: str
    installed_at: datetime
    status_changed_at: datetime | None
    api_url: str | None
    subscription_plan: str | None


class RefusedWebhook(BaseModel):
    event: str
    error: str | None


class WebhookCoverage(BaseModel):
    served: int
    manifest: int
    runtime: int
    refused: list[RefusedWebhook]
    missing: list[str]


class EventRead(BaseModel):
    id: int
    event_type: str
    source: str
    status: str
    attempts: int
    deliveries: int
    received_at: datetime
    processed_at: datetime | None
    last_error: str | None


class LastEventRead(BaseModel):
    """The newest event of one type the inbox holds, and how many of that type it holds."""

    last_received_at: datetime
    count: int


class StatusRead(BaseModel):
    workspace_id: str
    service: str
    installation: InstallationRead
    webhooks: WebhookCoverage
    inbox: dict[str, int]
    jobs: list[JobRead]
    sync: list[SyncRead]
    recent_events: list[EventRead]
    last_events: dict[str, LastEventRead]


async def coverage(session: AsyncSession, workspace_id: str, profile: ServiceProfile) -> WebhookCoverage:
    subs = await subscriptions(session, workspace_id)
    active = [s for s in subs if s.status == SubscriptionStatus.ACTIVE]
    covered = {s.event_type for s in active}
    return WebhookCoverage(
        served=len(covered),
        manifest=sum(1 for s in active if s.source == "MANIFEST"),
        runtime=sum(1 for s in active if s.source == "RUNTIME"),
        refused=[RefusedWebhook(event=s.event_type, error=s.error) for s in subs if s.status == SubscriptionStatus.REFUSED],
        missing=[e for e in profile.events if e not in covered],
    )


async def last_events(session: AsyncSession, workspace_id: str) -> dict[str, LastEventRead]:
    """Per event type, over the rows retention has kept (``RETENTION__*``)."""
    rows = await session.execute(
        select(InboxEvent.event_type, func.max(InboxEvent.received_at), func.count())
        .where(InboxEvent.workspace_id == workspace_id)
        .group_by(InboxEvent.event_type)
        .order_by(InboxEvent.event_type)
    )
    return {event_type: LastEventRead(last_received_at=last, count=count) for event_type, last, count in rows.all()}


async def workspace_status(session: AsyncSession, installation: Installation, profile: ServiceProfile) -> StatusRead:
    workspace_id = installation.workspace_id
    jobs = (
        await session.execute(select(Job).where(Job.workspace_id == workspace_id).order_by(Job.id.desc()).limit(20))
    ).scalars()
    states = (
        await session.execute(select(SyncState).where(SyncState.workspace_id == workspace_id).order_by(SyncState.kind))
    ).scalars()
    events = (
        await session.execute(
            select(InboxEvent).where(InboxEvent.workspace_id == workspace_id).order_by(InboxEvent.id.desc()).limit(20)
        )
    ).scalars()
    return StatusRead(
        workspace_id=workspace_id,
        service=profile.name,
        installation=InstallationRead.model_validate(installation, from_attributes=True),
        webhooks=await coverage(session, workspace_id, profile),
        inbox=await inbox.depth(session, workspace_id),
        jobs=[JobRead.model_validate(j, from_attributes=True) for j in jobs],
        sync=[SyncRead.of(s) for s in states],
        recent_events=[EventRead.model_validate(e, from_attributes=True) for e in events],
        last_events=await last_events(session, workspace_id),
    )
