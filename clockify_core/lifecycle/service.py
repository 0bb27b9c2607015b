"""What each lifecycle call does to the installation, its webhooks, jobs and data.

Every function runs in the request's transaction; work that needs Clockify's API
(registering extra webhooks, bootstrap) is queued as jobs in that same transaction,
so it survives a crash after the answer and never runs for a rolled-back install.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import structlog
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core.catalog import path_event
from clockify_core.db.base import utcnow
from clockify_core.db.dialect import insert_for
from clockify_core.db.purge import purge_workspace
from clockify_core.errors import BadRequest, TokenInvalid, WorkspaceMismatch
from clockify_core.installations import settings as workspace_settings
from clockify_core.installations.models import (
    REVOKED_TOKENS_KEPT,
    Installation,
    InstallationStatus,
    SubscriptionSource,
    SubscriptionStatus,
    UsedLifecycleToken,
    WebhookSubscription,
)
from clockify_core.installations.repository import require_installation, subscriptions
from clockify_core.jobs import queue
from clockify_core.jobs.models import JobKind
from clockify_core.lifecycle.schemas import (
    DeletedPayload,
    InstalledPayload,
    SettingsUpdatedPayload,
    StatusChangedPayload,
)
from clockify_core.manifest.builder import DEFAULT_SETTINGS
from clockify_core.runtime import Runtime
from clockify_core.security.crypto import TokenCipher, token_digest
from clockify_core.security.tokens import ClockifyClaims, TokenKind, ensure_workspace
from clockify_core.webhooks import inbox

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class LifecycleToken:
    """A verified lifecycle signature: its claims and the SHA-256 of the token itself.

    ``fresh`` is False when the token had been accepted before (see :func:`consume`).
    """

    claims: ClockifyClaims
    digest: str
    fresh: bool = True


async def lifecycle_token(runtime: Runtime, session: AsyncSession, token: str) -> LifecycleToken:
    """Verify the signature of a lifecycle call and refuse the tokens Clockify hands out to keep.

    Clockify signs webhook, installation and lifecycle tokens with one key and the same
    claims (docs/clockify.md#tokens); what tells them apart is where each was given. A webhook token
    travels with every delivery and never expires, so whoever sees one delivery must not be
    able to uninstall or pause the workspace with it: a lifecycle token equal to a webhook
    token stored for the workspace, or to its installation token, is refused.
    """
    claims = await runtime.verifier.verify(token, TokenKind.LIFECYCLE)
    digest = token_digest(token)
    kept = await session.scalar(
        select(WebhookSubscription.id)
        .where(WebhookSubscription.workspace_id == claims.workspace_id, WebhookSubscription.token_digest == digest)
        .limit(1)
    )
    installation = await session.get(Installation, claims.workspace_id)
    if kept is not None or (
        installation is not None
        and installation.auth_token_encrypted
        and hmac.compare_digest(runtime.cipher.decrypt(installation.auth_token_encrypted), token)
    ):
        raise TokenInvalid("a webhook or installation token is not a lifecycle token")
    return LifecycleToken(claims, digest)


async def consume(
    session: AsyncSession, auth: LifecycleToken, event: str, *, leeway_seconds: float
) -> LifecycleToken:
    """Record that ``auth`` is used for ``event``; the result says whether it was used before.

    One token, one call: the digest goes into ``used_lifecycle_tokens`` in the request's
    transaction, so a refused or failed call leaves the token unused, and every instance
    on the database agrees. A call racing another with the same token waits on the
    primary key (PostgreSQL) or the write lock (SQLite) until the first commits, then
    finds its row. Rows live until the token's ``exp`` (plus leeway) passes; after that the
    verifier refuses the token anyway and retention deletes the row.
    """
    leeway = timedelta(seconds=leeway_seconds)
    try:
        expires_at = datetime.fromtimestamp(auth.claims.exp or 0, UTC) + leeway
    except (OverflowError, OSError, ValueError):  # an exp past year 9999
        expires_at = datetime(9999, 12, 31, tzinfo=UTC)
    stmt = (
        insert_for(session)(UsedLifecycleToken)
        .values(digest=auth.digest, event=event, expires_at=expires_at, used_at=utcnow())
        .on_conflict_do_nothing(index_elements=["digest"])
        .returning(UsedLifecycleToken.digest)
    )
    fresh = (await session.execute(stmt)).first() is not None
    if not fresh:
        log.info("lifecycle.token_reused", workspace_id=auth.claims.workspace_id, lifecycle_event=event)
    return replace(auth, fresh=fresh)


def check_ids(claims: ClockifyClaims, workspace_id: str, addon_id: str) -> None:
    """The payload must name the workspace and installation its signature was issued for."""
    ensure_workspace(claims, workspace_id, addon_id=addon_id)


async def _current_installation(
    session: AsyncSession, auth: LifecycleToken, workspace_id: str, addon_id: str
) -> Installation:
    """The stored installation a DELETED, STATUS_CHANGED or SETTINGS_UPDATED call is about.

    Its ``addonId`` must be the stored one: a genuine call of an earlier installation of the
    same workspace (a replay, or a never-expiring webhook token of it) must not touch this one.
    """
    check_ids(auth.claims, workspace_id, addon_id)
    installation = await require_installation(session, workspace_id)
    if installation.addon_id != addon_id:
        raise WorkspaceMismatch("token belongs to an earlier installation of this workspace")
    return installation


def webhook_route_path(raw: str, base_url: str) -> str:
    """Clockify sends the manifest path or the full URL (docs/clockify.md#lifecycle); keep the route path."""
    path = urlsplit(raw).path if "://" in raw else raw
    base_path = urlsplit(base_url).path.rstrip("/")
    if base_path and path.startswith(base_path + "/"):
        path = path[len(base_path) :]
    return "/" + path.lstrip("/")


def default_settings() -> list[dict[str, object]]:
    # Through the same clamp as SETTINGS_UPDATED: what an installation stores is always in range.
    return workspace_settings.normalize(
        {"id": s.id, "name": s.name, "value": s.value} for tab in DEFAULT_SETTINGS.tabs for s in tab.settings
    )[0]


async def install(runtime: Runtime, session: AsyncSession, auth: LifecycleToken, payload: InstalledPayload) -> None:
    check_ids(auth.claims, payload.workspace_id, payload.addon_id)
    given = {token_digest(payload.auth_token), *(token_digest(w.auth_token) for w in payload.webhooks)}
    if auth.digest in given:
        raise TokenInvalid("a webhook or installation token is not a lifecycle token")
    # The installation token is Clockify's too: verify it and take the API URLs from it.
    token_claims = await runtime.verifier.verify(payload.auth_token, TokenKind.INSTALLATION)
    check_ids(token_claims, payload.workspace_id, payload.addon_id)
    settings, profile = runtime.settings, runtime.profile
    now = utcnow()
    installation = await _locked_installation(session, payload.workspace_id, payload.addon_id)
    if token_digest(payload.auth_token) in (installation.revoked_token_digests or ()):
        # Clockify issues a new token with every install; this one went with an uninstall.
        raise TokenInvalid("the installation token was revoked by an uninstall: a replayed INSTALLED")
    if _installed_with(runtime.cipher, installation, payload):
        # Clockify sends INSTALLED once per installation: this is a retry or a replay of the one
        # we hold. Answered 2xx, and nothing changes: no status, settings, webhooks or jobs.
        log.info("lifecycle.installed_again", workspace_id=payload.workspace_id, status=installation.status)
        return
    if not auth.fresh:
        raise TokenInvalid("this lifecycle token was used already")
    if installation.status == InstallationStatus.DELETED or not installation.settings:
        installation.installed_at = now
        installation.settings = default_settings()
    installation.addon_id = payload.addon_id
    installation.status = InstallationStatus.ACTIVE
    installation.status_changed_at = now
    installation.deleted_at = None
    installation.purge_after = None
    installation.auth_token_encrypted = runtime.cipher.encrypt(payload.auth_token)
    installation.api_url = payload.api_url
    installation.backend_url = token_claims.backend_url or payload.api_url
    installation.reports_url = token_claims.reports_url
    installation.pto_url = token_claims.pto_url
    installation.as_user = payload.as_user
    installation.addon_user_id = payload.addon_user_id
    await session.flush()

    # Every event the INSTALLED body brings a token for is a manifest webhook, whatever our
    # cap says now: the published manifest version is what Clockify delivers.
    manifest: dict[str, str] = {}
    tokens: dict[str, str] = {}
    for webhook in payload.webhooks:
        path = webhook_route_path(webhook.path, settings.base_url)
        event = path_event(path)
        if event is None or event not in profile.events or event in manifest:
            log.warning("lifecycle.unknown_webhook_path", workspace_id=payload.workspace_id, path=path[:200])
            continue
        manifest[event], tokens[event] = path, webhook.auth_token
    await _replace_subscriptions(session, installation, set(manifest))
    for event, path in manifest.items():
        session.add(
            WebhookSubscription(
                workspace_id=payload.workspace_id,
                event_type=event,
                path=path,
                source=SubscriptionSource.MANIFEST,
                status=SubscriptionStatus.ACTIVE,
                token_encrypted=runtime.cipher.encrypt(tokens[event]),
                token_digest=token_digest(tokens[event]),
            )
        )
    # The bootstrap first: its first request reads the plan, which registration spends by.
    await queue.enqueue(session, payload.workspace_id, JobKind.BOOTSTRAP)
    if any(event not in manifest for event in profile.events):
        await queue.enqueue(session, payload.workspace_id, JobKind.REGISTER_WEBHOOKS)
    log.info("lifecycle.installed", workspace_id=payload.workspace_id, webhooks=len(manifest))


async def _locked_installation(session: AsyncSession, workspace_id: str, addon_id: str) -> Installation:
    """The workspace's installation row, created if missing, locked until the transaction ends.

    Concurrent INSTALLED calls for one workspace queue here: the first creates the row, the
    others wait for it to commit (PostgreSQL: on the primary key, then the row lock; SQLite
    holds the write lock already) and then find what it stored, so none fails on a duplicate
    key. A new row starts as DELETED with no settings; the caller fills it in.
    """
    now = utcnow()
    await session.execute(
        insert_for(session)(Installation)
        .values(workspace_id=workspace_id, addon_id=addon_id, status=InstallationStatus.DELETED, settings=[],
                installed_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["workspace_id"])
    )
    # NO KEY UPDATE: queues concurrent installs without blocking the key-share locks that
    # inserts of rows referencing the installation (webhook subscriptions) take.
    installation = await session.get(
        Installation, workspace_id, with_for_update={"key_share": True}, populate_existing=True
    )
    assert installation is not None
    return installation


def _installed_with(cipher: TokenCipher, installation: Installation, payload: InstalledPayload) -> bool:
    """Whether ``installation`` is the live one ``payload`` announces (same id, same token)."""
    return (
        installation.status != InstallationStatus.DELETED
        and installation.addon_id == payload.addon_id
        and installation.auth_token_encrypted is not None
        and hmac.compare_digest(cipher.decrypt(installation.auth_token_encrypted), payload.auth_token)
    )


async def _replace_subscriptions(session: AsyncSession, installation: Installation, manifest: set[str]) -> None:
    """Clear the way for a (re)install's webhooks, whatever the previous install registered.

    Manifest rows go (the body brings new tokens). A runtime registration of an event the
    manifest now delivers goes too, and is removed at Clockify by an ``unregister_webhooks``
    job. The other runtime rows are marked REMOVED: the registration job replaces them.
    """
    workspace_id = installation.workspace_id
    source, event = WebhookSubscription.source, WebhookSubscription.event_type
    taken_over = and_(source == SubscriptionSource.RUNTIME, event.in_(manifest))
    stale = list(
        (
            await session.scalars(
                select(WebhookSubscription.clockify_webhook_id).where(
                    WebhookSubscription.workspace_id == workspace_id,
                    taken_over,
                    WebhookSubscription.clockify_webhook_id.is_not(None),
                )
            )
        ).all()
    )
    await session.execute(
        delete(WebhookSubscription).where(
            WebhookSubscription.workspace_id == workspace_id, or_(source == SubscriptionSource.MANIFEST, taken_over)
        )
    )
    await session.execute(
        update(WebhookSubscription)
        .where(WebhookSubscription.workspace_id == workspace_id, source == SubscriptionSource.RUNTIME)
        .values(status=SubscriptionStatus.REMOVED, token_encrypted=None, token_digest=None)
    )
    if stale and installation.auth_token_encrypted:
        await queue.enqueue(
            session, workspace_id, JobKind.UNREGISTER_WEBHOOKS,
            {"webhook_ids": stale, "token": installation.auth_token_encrypted}, unique=False,
        )


async def uninstall(runtime: Runtime, session: AsyncSession, auth: LifecycleToken, payload: DeletedPayload) -> None:
    installation = await _current_installation(session, auth, payload.workspace_id, payload.addon_id)
    workspace_id = payload.workspace_id
    registered = [
        s.clockify_webhook_id
        for s in await subscriptions(session, workspace_id)
        if s.source == SubscriptionSource.RUNTIME and s.clockify_webhook_id
    ]
    token = installation.auth_token_encrypted
    await queue.cancel_workspace(session, workspace_id)
    await inbox.cancel_workspace(session, workspace_id)
    await session.execute(delete(WebhookSubscription).where(WebhookSubscription.workspace_id == workspace_id))
    now = utcnow()
    installation.status = InstallationStatus.DELETED
    installation.status_changed_at = now
    installation.deleted_at = now
    if token:
        revoked = token_digest(runtime.cipher.decrypt(token))
        installation.revoked_token_digests = [*(installation.revoked_token_digests or ()), revoked][-REVOKED_TOKENS_KEPT:]
    installation.auth_token_encrypted = None
    retention = runtime.settings.lifecycle.retention_days
    if retention:
        installation.purge_after = now + timedelta(days=retention)
    else:
        await purge_workspace(session, workspace_id)
    if registered and token:
        # Queued after the purge, so an immediate one leaves it. Clockify revokes the token with
        # the uninstall; the job tries once and records what happened.
        await queue.enqueue(
            session, workspace_id, JobKind.UNREGISTER_WEBHOOKS, {"webhook_ids": registered, "token": token},
            unique=False,
        )
    log.info("lifecycle.deleted", workspace_id=workspace_id, retention_days=retention)


async def change_status(session: AsyncSession, auth: LifecycleToken, payload: StatusChangedPayload) -> None:
    installation = await _current_installation(session, auth, payload.workspace_id, payload.addon_id)
    previous = installation.status
    installation.status = payload.status
    installation.status_changed_at = utcnow()
    if previous == InstallationStatus.INACTIVE and payload.status == InstallationStatus.ACTIVE:
        # Webhooks sent while paused were stored; sync catches what was not sent at all.
        await queue.enqueue(session, payload.workspace_id, JobKind.SYNC)
    log.info("lifecycle.status_changed", workspace_id=payload.workspace_id, status=payload.status)


async def update_settings(
    session: AsyncSession, auth: LifecycleToken, payload: SettingsUpdatedPayload
) -> Installation:
    """Store the settings (clamped); returns the installation they now belong to."""
    installation = await _current_installation(session, auth, payload.workspace_id, payload.addon_id)
    ids = [s.id for s in payload.settings]
    if len(set(ids)) != len(ids):
        raise BadRequest("settings contain the same id twice")
    # Clockify stores whatever the admin typed; the installation stores it clamped (installations/settings.py).
    installation.settings, adjusted = workspace_settings.normalize(s.model_dump(mode="json") for s in payload.settings)
    for change in adjusted:
        log.warning("lifecycle.setting_clamped", workspace_id=payload.workspace_id, setting=change.id,
                    given=change.given, stored=change.stored)
    log.info("lifecycle.settings_updated", workspace_id=payload.workspace_id, count=len(ids))
    return installation

