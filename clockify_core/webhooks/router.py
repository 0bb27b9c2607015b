"""`POST /webhooks/{event-slug}`: one route for every Clockify event a tier serves.

Manifest webhooks and those registered at install share the path scheme
(``/webhooks/new-time-entry``), so one route serves both.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from clockify_core.deps import RuntimeDep, SessionDep
from clockify_core.errors import ClockifyError
from clockify_core.webhooks.receiver import accept_clockify_webhook, route_event

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


class WebhookAck(BaseModel):
    status: str  # "accepted" or "duplicate"
    id: int | None = None


_OUTCOMES = {400: "invalid", 401: "unauthorized", 403: "forbidden", 404: "not_found", 413: "too_large"}


@router.post(
    "/{slug}",
    summary="Receive a Clockify webhook",
    responses={
        400: {"description": "Malformed body or wrong event header"},
        401: {"description": "Missing or invalid Clockify-Signature"},
        413: {"description": "Body over the size limit"},
        503: {"description": "Database unavailable; Clockify should retry"},
    },
)
async def receive(slug: str, request: Request, runtime: RuntimeDep, session: SessionDep) -> WebhookAck:
    counter = runtime.metrics.webhooks_received
    try:
        event = route_event(slug, runtime.profile.events)
    except ClockifyError:
        counter.labels("unknown", "not_found").inc()
        raise
    try:
        accepted = await accept_clockify_webhook(runtime, session, request, event)
    except ClockifyError as exc:
        counter.labels(event, _OUTCOMES.get(exc.status, "error")).inc()
        raise
    if accepted.stored.duplicate:
        counter.labels(event, "duplicate").inc()
        return WebhookAck(status="duplicate")
    counter.labels(event, "accepted").inc()
    runtime.inbox_wakeup.set()
    return WebhookAck(status="accepted", id=accepted.stored.id)
