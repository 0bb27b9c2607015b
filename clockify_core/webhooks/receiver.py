"""Accepting a Clockify webhook: verify everything, store once, answer fast.

Checks run cheapest first and nothing is stored unless all pass:
route event → body size → headers → token signature and claims (cached per token)
→ the exact token stored for this route and workspace → JSON body whose ids match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core.catalog import EVENTS
from clockify_core.errors import BadRequest, MalformedBody, NotFound, PayloadTooLarge, TokenInvalid, Unauthorized, WorkspaceMismatch
from clockify_core.lifecycle.repository import subscription_for_token
from clockify_core.mirror.mapping import entity_id
from clockify_core.runtime import Runtime
from clockify_core.security.crypto import digests_match, token_digest
from clockify_core.security.tokens import TokenKind
from clockify_core.webhooks import inbox
from clockify_core.webhooks.models import EventSource

SIGNATURE_HEADER = "clockify-signature"
EVENT_HEADER = "clockify-webhook-event-type"


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
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the {limit} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


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


async def accept_clockify_webhook(
    runtime: Runtime, session: AsyncSession, request: Request, route_event: str
) -> Accepted:
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

    claims = await runtime.verifier.verify(token, TokenKind.WEBHOOK)
    digest = token_digest(token)
    match = await subscription_for_token(session, digest, request.url.path)
    if match is None:
        raise TokenInvalid("this token is not registered for this webhook route")
    subscription, installation = match
    if not digests_match(token, subscription.token_digest or ""):
        raise TokenInvalid("this token is not registered for this webhook route")
    if subscription.event_type != route_event:
        raise TokenInvalid("this token belongs to another webhook")
    if installation.workspace_id != claims.workspace_id or installation.addon_id != claims.addon_id:
        raise WorkspaceMismatch("token claims do not match the installation")

    data = parse_object(body)
    body_workspace = data.get("workspaceId")
    if body_workspace is not None and body_workspace != claims.workspace_id:
        raise WorkspaceMismatch("body workspaceId differs from the token's workspace")
    spec = EVENTS[route_event]
    row_id = entity_id(spec.kind, data, spec.id_field)
    stored = await inbox.store_event(
        session,
        workspace_id=claims.workspace_id,
        event_type=route_event,
        body=body,
        source=EventSource.CLOCKIFY,
        entity_key=f"{spec.kind}:{row_id}" if row_id else None,
        window=settings.webhooks.dedup_window_seconds,
    )
    return Accepted(event_type=route_event, workspace_id=claims.workspace_id, stored=stored)


def route_event(slug: str, served: tuple[str, ...]) -> str:
    event = slug.upper().replace("-", "_")
    if event not in EVENTS or event not in served:
        raise NotFound("no webhook route here")
    return event
