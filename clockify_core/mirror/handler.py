"""Applying inbox events to the mirror.

Clockify's bodies carry no version, so two updates delivered out of order cannot be
put back in order from the bodies alone. The body is applied with the monotonic rules
of :mod:`clockify_core.mirror.writer`, then, where the entity can be read by id and
the rate budget allows (``mirror.refetch``), the entity as Clockify serves it now is
applied on top as the truth. Whatever a refetch misses, incremental sync repairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core.catalog import EVENTS, FREE_PLAN, Action
from clockify_core.client import ClockifyApiError
from clockify_core.errors import ClockifyError, RateLimited
from clockify_core.installations.repository import get_installation, installation_api
from clockify_core.jobs import queue
from clockify_core.jobs.models import JobKind
from clockify_core.mirror.mapping import parse_time
from clockify_core.mirror.writer import MirrorWriter
from clockify_core.payloads import entity_id
from clockify_core.runtime import Runtime
from clockify_core.webhooks.inbox import ClaimedEvent
from clockify_core.webhooks.models import EventSource

log = structlog.get_logger(__name__)

READ_BY_ID: dict[str, str] = {
    "time_entry": "/v1/workspaces/{workspace}/time-entries/{id}",
    "project": "/v1/workspaces/{workspace}/projects/{id}",
    "client": "/v1/workspaces/{workspace}/clients/{id}",
    "tag": "/v1/workspaces/{workspace}/tags/{id}",
    "task": "/v1/workspaces/{workspace}/projects/{projectId}/tasks/{id}",
}


@dataclass(frozen=True, slots=True)
class Snapshot:
    body: dict[str, Any] | None  # None: Clockify says the entity does not exist


class MirrorHandler:
    async def prepare(self, runtime: Runtime, event: ClaimedEvent) -> Snapshot | None:
        policy = runtime.settings.mirror.refetch
        spec = EVENTS.get(event.event_type)
        if policy == "never" or event.source != EventSource.CLOCKIFY or spec is None or spec.kind not in READ_BY_ID:
            return None
        body = event.body
        row_id = entity_id(spec.kind, body, spec.id_field)
        if row_id is None or not isinstance(body, dict):
            return None
        project_id = body.get("projectId")
        template = READ_BY_ID[spec.kind]
        if "{projectId}" in template and not (isinstance(project_id, str) and project_id):
            return None  # a task can only be read through its project
        path = template.format(workspace=event.workspace_id, id=row_id, projectId=project_id)
        async with runtime.sessions() as session:
            installation = await get_installation(session, event.workspace_id)
        if installation is None or not installation.auth_token_encrypted:
            return None
        if policy == "auto" and installation.subscription_plan in (FREE_PLAN, None):
            # 30 requests an hour are for sync, not for confirming webhooks; a plan not read
            # yet (the first bootstrap has not reached it) may be Free.
            return None
        try:
            api = installation_api(runtime, installation)
            data = await api.get_json(path, max_wait=0.0 if policy == "auto" else None)
        except RateLimited:
            return None
        except ClockifyApiError as exc:
            if exc.status_code == 404:
                return Snapshot(None)
            log.info("mirror.refetch_failed", event_id=event.id, status=exc.status_code)
            return None
        except ClockifyError as exc:
            log.info("mirror.refetch_failed", event_id=event.id, error=exc.detail)
            return None
        return Snapshot(data) if isinstance(data, dict) else None

    async def apply(self, runtime: Runtime, session: AsyncSession, event: ClaimedEvent, prepared: Snapshot | None) -> None:
        spec = EVENTS.get(event.event_type)
        if event.source != EventSource.CLOCKIFY or spec is None:
            return
        writer = MirrorWriter(session, metrics=runtime.metrics)
        row_id = await writer.apply_event(event.workspace_id, spec, event.body)
        if row_id is None:
            log.warning("mirror.body_without_id", event_id=event.id, event_type=event.event_type)
            return
        if prepared is not None:
            await writer.apply_snapshot(event.workspace_id, spec.kind, row_id, prepared.body, event=spec.name)
        if spec.action is Action.SPLIT:
            await self._reconcile_split(session, event)

    async def _reconcile_split(self, session: AsyncSession, event: ClaimedEvent) -> None:
        """One body arrives for two entries: re-pull that user's entries around it."""
        body = event.body
        interval = body.get("timeInterval") or {}
        start = parse_time(interval.get("start"))
        user_id = body.get("userId")
        if start is None or not isinstance(user_id, str):
            return
        await queue.enqueue(
            session, event.workspace_id, JobKind.RECONCILE,
            {"user_id": user_id, "start": start.isoformat(), "reason": event.event_type}, unique=False,
        )
