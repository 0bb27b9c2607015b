"""Accepting a Clockify webhook: verify everything, store once, answer fast.

Checks run cheapest first and nothing is stored unless all pass:
route event → body size → headers → token signature and claims (cached per token)
→ the exact token stored for this route and workspace (cached a few seconds, and
re-checked by the INSERT itself) → JSON body whose ids match and are Clockify ids
(24 hexadecimal characters; anything else is answered 400, so no event is stored that
could never be applied).

The row is written by the group-commit writer (``webhooks/ingest.py``) and committed
before this returns, so a 2xx always means the event is durable.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request
from starlette.requests import ClientDisconnect

from clockify_core.catalog import EVENTS
from clockify_core.db.base import utcnow
from clockify_core.errors import (
    BadRequest,
    MalformedBody,
    NotFound,
    PayloadTooLarge,
    TokenInvalid,
    Unauthorized,
    WorkspaceMismatch,
)
from clockify_core.installations.repository import subscription_for_token
from clockify_core.payloads import entity_id, without_nul
from clockify_core.runtime import Runtime
from clockify_core.security.crypto import token_digest
from clockify_core.security.tokens import ClockifyClaims, TokenKind
from clockify_core.webhooks import inbox
from clockify_core.webhooks.ingest import SubscriptionMatch, WebhookIngest
from clockify_core.webhooks.models import EventSource

SIGNATURE_HEADER = "clockify-signature"
EVENT_HEADER = "clockify-webhook-event-type"
_NOT_REGISTERED = "this token is not registered for this webhook route"
# Clockify ids are MongoDB ObjectIds: 24 hexadecimal characters (docs/clockify.md).
CLOCKIFY_ID = re.compile(r"[0-9a-fA-F]{24}")
# Keys of kinds without an id (mapping.entity_id): ids, upper-case names (PROJECT_MEMBER)
# and digests joined by ':'; bounded so `kind:key` fits inbox_events.entity_key (200).
_DERIVED_ID = re.compile(r"[0-9A-Za-z_]{1,64}(?::[0-9A-Za-z_]{1,64}){0,2}")


@dataclass(frozen=True, slots=True)
class Accepted:
    event_type: str
    workspace_id: str
    stored: inbox.Stored


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` (before reading it all)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise PayloadTooLarge(f"body of {declared} bytes exceeds the {limit} byte limit")
        except ValueError:
            raise BadRequest("Content-Length is not a number") from None
    chunks: list[bytes] = []
    size = 0
    # The ASGI messages directly: Request.stream() adds an async generator per request.
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the {limit} byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(f"body is not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise MalformedBody("body must be a JSON object")
    return data


def single_header(request: Request, name: str) -> str | None:
    """A header that must appear at most once (a duplicate could smuggle a second token)."""
    values = request.headers.getlist(name)
    if len(values) > 1:
        raise BadRequest(f"{name} header appears more than once")
    return values[0].strip() if values else None


async def _subscription(runtime: Runtime, digest: str, path: str) -> SubscriptionMatch:
    """The active subscription of the token whose digest is ``digest`` on this route: from the
    cache, else the database."""

    async def lookup() -> SubscriptionMatch | None:
        async with runtime.sessions() as session:
            found = await subscription_for_token(session, digest, path)
        if found is None:
            return None
        subscription, installation = found
        return SubscriptionMatch(
            subscription_id=subscription.id, event_type=subscription.event_type,
            workspace_id=installation.workspace_id, addon_id=installation.addon_id,
            token_digest=subscription.token_digest or "",
        )

    cache = runtime.part(WebhookIngest).subscriptions
    match = cache.get(digest, path) or await cache.load(digest, path, lookup)
    if match is None or not hmac.compare_digest(digest, match.token_digest):
        raise TokenInvalid(_NOT_REGISTERED)
    return match


def _check_match(match: SubscriptionMatch, claims: ClockifyClaims, route_event: str) -> None:
    if match.event_type != route_event:
        raise TokenInvalid("this token belongs to another webhook")
    if match.workspace_id != claims.workspace_id or match.addon_id != claims.addon_id:
        raise WorkspaceMismatch("token claims do not match the installation")


async def accept_clockify_webhook(runtime: Runtime, request: Request, route_event: str) -> Accepted:
    settings = runtime.settings
    body = await read_body(request, settings.webhooks.max_body_bytes)
    token = single_header(request, SIGNATURE_HEADER)
    if not token:
        raise Unauthorized("Clockify-Signature header is missing")
    header_event = single_header(request, EVENT_HEADER)
    if not header_event:
        raise BadRequest("Clockify-Webhook-Event-Type header is missing")
    if header_event != route_event:
        raise BadRequest(f"event type {header_event[:64]!r} is not the event this route receives")

    digest = token_digest(token)  # once: the verifier's cache and the subscription are keyed by it
    claims = await runtime.verifier.verify(token, TokenKind.WEBHOOK, digest=digest)
    path = request.scope["path"]  # what request.url.path holds, without building the URL
    match = await _subscription(runtime, digest, path)
    _check_match(match, claims, route_event)

    data = parse_object(body)
    body_workspace = data.get("workspaceId")
    if body_workspace is not None and body_workspace != claims.workspace_id:
        raise WorkspaceMismatch("body workspaceId differs from the token's workspace")
    spec = EVENTS[route_event]
    entity_key = _entity_key(route_event, spec.kind, spec.id_field, data)
    if b"\\u0000" in body:  # JSON spells U+0000 only this way; most bodies skip the walk
        # PostgreSQL cannot store U+0000 in text or jsonb: every handler would fail on the body.
        body = orjson.dumps(without_nul(data))
    stored = await runtime.part(WebhookIngest).writer.store(
        inbox.NewEvent(
            workspace_id=claims.workspace_id,
            event_type=route_event,
            body=body,
            received_at=utcnow(),
            source=EventSource.CLOCKIFY,
            entity_key=entity_key,
            window=settings.webhooks.dedup_window_seconds,
            subscription_id=match.subscription_id,
            token_digest=digest,
            addon_id=claims.addon_id,
        )
    )
    if stored is None:
        # The subscription went away (uninstall, re-registration) after it was cached.
        runtime.part(WebhookIngest).subscriptions.discard(digest, path)
        raise TokenInvalid(_NOT_REGISTERED)
    return Accepted(event_type=route_event, workspace_id=claims.workspace_id, stored=stored)


def _entity_key(event: str, kind: str, id_field: str, data: dict[str, Any]) -> str:
    """``kind:id`` of the body's entity, refused with 400 unless the id is one Clockify issues.

    An id Clockify sends in a field (``id``, ``expenseId``...) is 24 hexadecimal characters
    (docs/clockify.md); kinds without an id of their own (rates, balances, invitations) get
    a key built from such ids and upper-case names. A body without any id is ordered and
    deduplicated with the other id-less events of its type (``event:TYPE``).
    """
    row_id = entity_id(kind, data, id_field)
    if row_id is None:
        return f"event:{event}"
    field = next((f for f in (id_field, "id", "_id") if isinstance(data.get(f), str) and data.get(f)), None)
    if field is not None:
        if not CLOCKIFY_ID.fullmatch(row_id):
            raise MalformedBody(f"{field} must be a Clockify id: 24 hexadecimal characters")
    elif not _DERIVED_ID.fullmatch(row_id):
        raise MalformedBody(f"the {kind} in the body is not named by Clockify ids")
    return f"{kind}:{row_id}"


def route_event(slug: str, served: tuple[str, ...]) -> str:
    event = slug.upper().replace("-", "_")
    if event not in EVENTS or event not in served:
        raise NotFound("no webhook route here")
    return event
