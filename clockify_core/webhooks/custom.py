"""Custom (non-Clockify) webhook sources: HMAC-signed events from anything, into the inbox.

A workspace admin creates a source and gets its URL and secret once; senders sign
each body as docs/custom-webhooks.md describes. Rotation adds a secret and keeps the
previous one valid until the next rotation, so senders can switch without downtime.
Custom events feed flows; they never touch the Clockify mirror.
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import datetime

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select

from clockify_core.access import AdminDep
from clockify_core.deps import RuntimeDep, SessionDep
from clockify_core.errors import ClockifyError, MalformedBody, NotFound
from clockify_core.lifecycle.models import Installation, InstallationStatus
from clockify_core.runtime import Runtime
from clockify_core.security.hmac import HmacVerifier
from clockify_core.webhooks import inbox
from clockify_core.webhooks.models import CustomWebhookSource, EventSource
from clockify_core.webhooks.receiver import read_body

EVENT_TYPE_HEADER = "x-event-type"
DEFAULT_EVENT_TYPE = "CUSTOM"
_EVENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,100}$")
ACTIVE_SECRETS = 2


class SourceCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    secret: str | None = Field(None, min_length=16, max_length=512, description="Omit to have one generated")
    signature_header: str = Field("X-Signature")
    timestamp_header: str = Field("X-Timestamp")
    tolerance_seconds: int = Field(300, ge=10, le=86400)

    @field_validator("signature_header", "timestamp_header")
    @classmethod
    def _header(cls, value: str) -> str:
        if not _HEADER_NAME.match(value):
            raise ValueError("must be a plain header name (letters, digits, dashes)")
        return value


class SourceRead(BaseModel):
    id: str
    name: str
    url: str
    signature_header: str
    timestamp_header: str | None
    tolerance_seconds: int
    enabled: bool
    created_at: datetime


class SourceWithSecret(SourceRead):
    secret: str = Field(description="Shown once; store it with the sender")


class CustomAck(BaseModel):
    status: str
    id: int | None = None


def _read(source: CustomWebhookSource, runtime: Runtime) -> SourceRead:
    return SourceRead(
        id=source.id, name=source.name, url=f"{runtime.settings.base_url.rstrip('/')}/webhooks/custom/{source.id}",
        signature_header=source.signature_header, timestamp_header=source.timestamp_header,
        tolerance_seconds=source.tolerance_seconds, enabled=source.enabled, created_at=source.created_at,
    )


def _secrets(runtime: Runtime, source: CustomWebhookSource) -> list[str]:
    data = orjson.loads(runtime.cipher.decrypt(source.secrets_encrypted))
    return [str(s) for s in data]


def _store_secrets(runtime: Runtime, values: list[str]) -> str:
    return runtime.cipher.encrypt(orjson.dumps(values[-ACTIVE_SECRETS:]).decode())


manage = APIRouter(prefix="/api/custom-sources", tags=["custom webhooks"])


async def _owned(session: SessionDep, user: AdminDep, source_id: str) -> CustomWebhookSource:
    source = await session.get(CustomWebhookSource, source_id)
    if source is None or source.workspace_id != user.workspace_id:
        raise NotFound("no such custom source in your workspace")
    return source


@manage.get("", summary="Custom webhook sources of your workspace")
async def list_sources(user: AdminDep, session: SessionDep, runtime: RuntimeDep) -> list[SourceRead]:
    rows = await session.execute(
        select(CustomWebhookSource).where(CustomWebhookSource.workspace_id == user.workspace_id).order_by(CustomWebhookSource.created_at)
    )
    return [_read(s, runtime) for s in rows.scalars()]


@manage.post("", status_code=201, summary="Create a source; its secret is shown only in this answer")
async def create_source(body: SourceCreate, user: AdminDep, session: SessionDep, runtime: RuntimeDep) -> SourceWithSecret:
    secret = body.secret or secrets.token_urlsafe(32)
    source = CustomWebhookSource(
        id=uuid.uuid4().hex, workspace_id=user.workspace_id, name=body.name,
        secrets_encrypted=_store_secrets(runtime, [secret]), signature_header=body.signature_header,
        timestamp_header=body.timestamp_header, tolerance_seconds=body.tolerance_seconds, enabled=True, settings={},
    )
    session.add(source)
    await session.flush()
    return SourceWithSecret(**_read(source, runtime).model_dump(), secret=secret)


@manage.post("/{source_id}/rotate", summary="Add a new secret; the previous one stays valid until the next rotation")
async def rotate_secret(source_id: str, user: AdminDep, session: SessionDep, runtime: RuntimeDep) -> SourceWithSecret:
    source = await _owned(session, user, source_id)
    secret = secrets.token_urlsafe(32)
    source.secrets_encrypted = _store_secrets(runtime, [*_secrets(runtime, source), secret])
    return SourceWithSecret(**_read(source, runtime).model_dump(), secret=secret)


@manage.delete("/{source_id}", status_code=204, summary="Delete a source; its URL stops accepting events")
async def delete_source(source_id: str, user: AdminDep, session: SessionDep) -> None:
    await session.delete(await _owned(session, user, source_id))


receive = APIRouter(prefix="/webhooks/custom", tags=["custom webhooks"])


@receive.post(
    "/{source_id}",
    summary="Receive an HMAC-signed event from a custom source",
    responses={401: {"description": "Bad or missing signature"}, 404: {"description": "Unknown source"}},
)
async def receive_custom(source_id: str, request: Request, runtime: RuntimeDep, session: SessionDep) -> CustomAck:
    counter = runtime.metrics.webhooks_received
    try:
        body = await read_body(request, runtime.settings.webhooks.max_body_bytes)
        source = await session.get(CustomWebhookSource, source_id) if len(source_id) <= 64 else None
        installation = await session.get(Installation, source.workspace_id) if source else None
        if source is None or not source.enabled or installation is None or installation.status == InstallationStatus.DELETED:
            raise NotFound("no such custom webhook source")
        verifier = HmacVerifier(
            _secrets(runtime, source), tolerance_seconds=source.tolerance_seconds,
            signature_header=source.signature_header, timestamp_header=source.timestamp_header or "X-Timestamp",
        )
        verifier.verify_request(body, request.headers)
        event_type = request.headers.get(EVENT_TYPE_HEADER, DEFAULT_EVENT_TYPE).strip()
        if not _EVENT_TYPE.match(event_type):
            raise MalformedBody("X-Event-Type must be 1-64 letters, digits, dots, dashes or colons")
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedBody(f"body is not valid JSON: {exc.msg}") from None
        stored = await inbox.store_event(
            session, workspace_id=source.workspace_id, event_type=event_type, body=body, source=EventSource.CUSTOM,
            source_ref=source.id, window=runtime.settings.webhooks.dedup_window_seconds,
        )
    except ClockifyError as exc:
        counter.labels("custom", {401: "unauthorized", 404: "not_found", 413: "too_large"}.get(exc.status, "invalid")).inc()
        raise
    counter.labels("custom", "duplicate" if stored.duplicate else "accepted").inc()
    runtime.inbox_wakeup.set()
    return CustomAck(status="duplicate" if stored.duplicate else "accepted", id=stored.id)
