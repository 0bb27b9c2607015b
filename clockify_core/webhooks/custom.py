"""Custom (non-Clockify) webhook sources: Standard Webhooks events from anything, into the inbox.

A workspace admin creates a source and gets its URL and ``whsec_`` secret once; senders
sign each message as docs/custom-webhooks.md describes (security/hmac.py verifies).
Rotation adds a secret and keeps the previous one valid until the next rotation, so
senders can switch without downtime. A message is stored once per ``webhook-id``, so a
sender's retries are answered ``duplicate``. Custom events feed flows; they never touch
the Clockify mirror.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select

from clockify_core.access import AdminDep
from clockify_core.db.after_commit import after_commit
from clockify_core.deps import RuntimeDep, SessionDep
from clockify_core.errors import ClockifyError, ConfigurationError, MalformedBody, NotFound
from clockify_core.installations.limits import reserve_slot
from clockify_core.installations.models import Installation, InstallationStatus
from clockify_core.payloads import without_nul
from clockify_core.security.crypto import TokenCipher
from clockify_core.security.hmac import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    HmacVerifier,
    generate_secret,
    secret_key,
)
from clockify_core.webhooks import inbox
from clockify_core.webhooks.models import CustomWebhookSource, EventSource
from clockify_core.webhooks.quota import (
    QuotaRead,
    SourceQuota,
    charge,
    effective_quota,
    stored_quota,
)
from clockify_core.webhooks.receiver import read_body, single_header

EVENT_TYPE_HEADER = "x-event-type"
DEFAULT_EVENT_TYPE = "CUSTOM"
_EVENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
ACTIVE_SECRETS = 2


class SourceCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    secret: str | None = Field(
        None,
        min_length=16,
        max_length=512,
        description="Omit to have a whsec_ secret generated; else whsec_<base64> (or a raw string of 16+ bytes)",
    )
    tolerance_seconds: int = Field(
        300, ge=10, le=86400, description="How far webhook-timestamp may be from now"
    )
    quota: SourceQuota | None = Field(None, description="Own rate and size quota; omitted = the defaults")

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                secret_key(value)
            except ConfigurationError as exc:
                raise ValueError(exc.detail) from None
        return value


class SourceRead(BaseModel):
    id: str
    name: str
    url: str
    tolerance_seconds: int
    enabled: bool
    created_at: datetime


class SourceWithSecret(SourceRead):
    secret: str = Field(description="Shown once; store it with the sender")


class CustomAck(BaseModel):
    status: str
    id: int | None = None


def _read(source: CustomWebhookSource, base_url: str) -> SourceRead:
    return SourceRead(
        id=source.id,
        name=source.name,
        url=f"{base_url.rstrip('/')}/webhooks/custom/{source.id}",
        tolerance_seconds=source.tolerance_seconds,
        enabled=source.enabled,
        created_at=source.created_at,
    )


def _secrets(cipher: TokenCipher, source: CustomWebhookSource) -> list[str]:
    data = orjson.loads(cipher.decrypt(source.secrets_encrypted))
    return [str(s) for s in data]


def _store_secrets(cipher: TokenCipher, values: list[str]) -> str:
    return cipher.encrypt(orjson.dumps(values[-ACTIVE_SECRETS:]).decode())


manage = APIRouter(prefix="/api/custom-sources", tags=["custom webhooks"])


async def _owned(session: SessionDep, user: AdminDep, source_id: str) -> CustomWebhookSource:
    source = await session.get(CustomWebhookSource, source_id)
    if source is None or source.workspace_id != user.workspace_id:
        raise NotFound("no such custom source in your workspace")
    return source


@manage.get("", summary="Custom webhook sources of your workspace")
async def list_sources(
    user: AdminDep, session: SessionDep, runtime: RuntimeDep
) -> list[SourceRead]:
    rows = await session.execute(
        select(CustomWebhookSource)
        .where(CustomWebhookSource.workspace_id == user.workspace_id)
        .order_by(CustomWebhookSource.created_at)
    )
    return [_read(s, runtime.settings.base_url) for s in rows.scalars()]


@manage.post(
    "", status_code=201, summary="Create a source; its secret is shown only in this answer"
)
async def create_source(
    body: SourceCreate, user: AdminDep, session: SessionDep, runtime: RuntimeDep
) -> SourceWithSecret:
    # Each source has its own quota, so their number is what bounds a workspace's share.
    await reserve_slot(session, CustomWebhookSource, user.workspace_id,
                       runtime.settings.webhooks.max_custom_sources_per_workspace,
                       "custom webhook sources (WEBHOOKS__MAX_CUSTOM_SOURCES_PER_WORKSPACE)")
    secret = body.secret or generate_secret()
    source = CustomWebhookSource(
        id=uuid.uuid4().hex,
        workspace_id=user.workspace_id,
        name=body.name,
        secrets_encrypted=_store_secrets(runtime.cipher, [secret]),
        tolerance_seconds=body.tolerance_seconds,
        enabled=True,
        settings={"quota": body.quota.model_dump(exclude_none=True)} if body.quota else {},
    )
    session.add(source)
    await session.flush()
    return SourceWithSecret(**_read(source, runtime.settings.base_url).model_dump(), secret=secret)


@manage.post(
    "/{source_id}/rotate",
    summary="Add a new secret; the previous one stays valid until the next rotation",
)
async def rotate_secret(
    source_id: str, user: AdminDep, session: SessionDep, runtime: RuntimeDep
) -> SourceWithSecret:
    source = await _owned(session, user, source_id)
    secret = generate_secret()
    source.secrets_encrypted = _store_secrets(runtime.cipher, [*_secrets(runtime.cipher, source), secret])
    return SourceWithSecret(**_read(source, runtime.settings.base_url).model_dump(), secret=secret)


@manage.get("/{source_id}/quota", summary="The source's rate and size quota (its own values, else the defaults)")
async def get_quota(
    source_id: str, user: AdminDep, session: SessionDep, runtime: RuntimeDep
) -> QuotaRead:
    source = await _owned(session, user, source_id)
    return effective_quota(runtime.settings.webhooks, stored_quota(source.settings)).read()


@manage.put("/{source_id}/quota", summary="Set the source's quota; members left out take the defaults")
async def set_quota(
    source_id: str, body: SourceQuota, user: AdminDep, session: SessionDep, runtime: RuntimeDep
) -> QuotaRead:
    source = await _owned(session, user, source_id)
    source.settings = {**(source.settings or {}), "quota": body.model_dump(exclude_none=True)}
    return effective_quota(runtime.settings.webhooks, body).read()


@manage.delete(
    "/{source_id}", status_code=204, summary="Delete a source; its URL stops accepting events"
)
async def delete_source(source_id: str, user: AdminDep, session: SessionDep) -> None:
    await session.delete(await _owned(session, user, source_id))


def _event_type(header: str | None, data: object) -> str:
    """The X-Event-Type header; else the Standard Webhooks payload's ``type``; else CUSTOM."""
    if header is not None:
        if not _EVENT_TYPE.fullmatch(header.strip()):
            raise MalformedBody("X-Event-Type must be 1-64 letters, digits, dots, dashes or colons")
        return header.strip()
    declared = data.get("type") if isinstance(data, dict) else None
    return declared if isinstance(declared, str) and _EVENT_TYPE.fullmatch(declared) else DEFAULT_EVENT_TYPE


receive = APIRouter(prefix="/webhooks/custom", tags=["custom webhooks"])


@receive.post(
    "/{source_id}",
    summary="Receive a Standard Webhooks-signed event from a custom source",
    responses={
        400: {"description": "A webhook-* header sent twice, or a bad body or X-Event-Type"},
        401: {
            "description": "Missing or malformed webhook-* headers, stale timestamp or bad signature"
        },
        404: {"description": "Unknown or disabled source"},
        413: {"description": "The body is larger than the source's max_body_bytes"},
        429: {"description": "The source is over its request or byte quota (Retry-After says when to retry)"},
    },
)
async def receive_custom(
    source_id: str, request: Request, runtime: RuntimeDep, session: SessionDep
) -> CustomAck:
    count = runtime.metrics.webhook_received
    try:
        source = await session.get(CustomWebhookSource, source_id) if len(source_id) <= 64 else None
        installation = await session.get(Installation, source.workspace_id) if source else None
        if (
            source is None
            or not source.enabled
            or installation is None
            or installation.status == InstallationStatus.DELETED
        ):
            raise NotFound("no such custom webhook source")
        limits = effective_quota(runtime.settings.webhooks, stored_quota(source.settings))
        body = await read_body(request, limits.max_body_bytes)
        verified = HmacVerifier(
            _secrets(runtime.cipher, source), tolerance_seconds=source.tolerance_seconds
        ).verify(
            body,
            webhook_id=single_header(request, ID_HEADER),
            timestamp=single_header(request, TIMESTAMP_HEADER),
            signature=single_header(request, SIGNATURE_HEADER),
        )
        # Charged once signed, before parsing and storing: see quota.py for why this order.
        await charge(runtime.limiter, source.id, limits, len(body))
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedBody(f"body is not valid JSON: {exc.msg}") from None
        event_type = _event_type(request.headers.get(EVENT_TYPE_HEADER), data)
        if b"\\u0000" in body:  # PostgreSQL's jsonb refuses NUL; flows store the body as their trigger
            body = orjson.dumps(without_nul(data))
        stored = await inbox.store_event(
            session,
            workspace_id=source.workspace_id,
            event_type=event_type,
            body=body,
            source=EventSource.CUSTOM,
            source_ref=source.id,
            delivery_id=verified.webhook_id,
        )
    except ClockifyError as exc:
        count(
            "custom",
            {401: "unauthorized", 404: "not_found", 413: "too_large", 429: "rate_limited"}.get(exc.status, "invalid"),
        )
        raise
    count("custom", "duplicate" if stored.duplicate else "accepted")
    after_commit(session, runtime.inbox_wakeup.set)
    return CustomAck(status="duplicate" if stored.duplicate else "accepted", id=stored.id)
