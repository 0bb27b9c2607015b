"""`POST /webhooks/{event-slug}`: one route for every Clockify event a tier serves.

Manifest webhooks and those registered at install share the path scheme
(``/webhooks/new-time-entry``), so one route serves both.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from starlette.routing import Match, Route
from starlette.types import Scope

from clockify_core.deps import runtime_of
from clockify_core.errors import ClockifyError
from clockify_core.webhooks.receiver import accept_clockify_webhook, route_event


class WebhookAck(BaseModel):
    status: str  # "accepted" or "duplicate"
    id: int | None = None


_OUTCOMES = {400: "invalid", 401: "unauthorized", 403: "forbidden", 404: "not_found", 413: "too_large"}


def _ack(status: str, event_id: int | None) -> Response:
    # The documented WebhookAck shape, encoded directly.
    return Response(orjson.dumps({"status": status, "id": event_id}), media_type="application/json")


router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post(
    "/{slug}",
    response_model=WebhookAck,
    summary="Receive a Clockify webhook",
    responses={
        400: {"description": "Malformed body or wrong event header"},
        401: {"description": "Missing or invalid Clockify-Signature"},
        413: {"description": "Body over the size limit"},
        503: {"description": "Database unavailable; Clockify should retry"},
    },
)
async def receive(slug: str, request: Request) -> Response:
    # No dependencies: the fast route below calls this directly (get_runtime is runtime_of).
    runtime = runtime_of(request)
    metrics = runtime.metrics
    try:
        event = route_event(slug, runtime.profile.events)
    except ClockifyError:
        metrics.webhook_received("unknown", "not_found")
        raise
    try:
        accepted = await accept_clockify_webhook(runtime, request, event)
    except ClockifyError as exc:
        metrics.webhook_received(event, _OUTCOMES.get(exc.status, "error"))
        raise
    if accepted.stored.duplicate:
        metrics.webhook_received(event, "duplicate")
        return _ack("duplicate", None)
    metrics.webhook_received(event, "accepted")
    runtime.inbox_wakeup.set()
    return _ack("accepted", accepted.stored.id)


async def _serve(request: Request) -> Response:
    return await receive(request.path_params["slug"], request)


# What serves the route: a plain Starlette route that create_addon_app puts ahead of every
# FastAPI route. FastAPI's request handling (dependency resolution, parameter validation,
# included-router dispatch) costs more CPU than verifying and storing a webhook
# (docs/benchmarks.md, "Webhook ingest"). The FastAPI route above stays as the OpenAPI
# description and behaves the same where the fast route is not installed.
class _TemplatedRoute(Route):
    """A Starlette route that names itself in the scope, as FastAPI's routes do.

    The access metrics label each request with ``scope["route"]``'s template; a plain
    Starlette route leaves it unset, and every webhook was counted as ``<unmatched>``.
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


fast_route = _TemplatedRoute("/webhooks/{slug}", endpoint=_serve, methods=["POST"], include_in_schema=False)
