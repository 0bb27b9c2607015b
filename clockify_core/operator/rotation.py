"""Re-encrypting every stored secret under the first ``ENCRYPTION_KEY``.

Rotation: put the new key first in ``ENCRYPTION_KEY`` (the old ones after it, so both
still decrypt), run ``<service> rotate-secrets``, then drop the old keys. Each table is
rewritten in its own transaction; running it twice is harmless.

An operator action over every feature's tables (installations, webhooks, flows, jobs), so
it sits above them rather than in ``security/``, which they all build on.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clockify_core.flows.models import Flow
from clockify_core.flows.secrets import reencrypt
from clockify_core.installations.models import Installation, WebhookSubscription
from clockify_core.jobs.models import Job
from clockify_core.security.crypto import TokenCipher
from clockify_core.webhooks.models import CustomWebhookSource


async def rotate_secrets(sessions: async_sessionmaker[AsyncSession], cipher: TokenCipher) -> dict[str, int]:
    """Rewrite every encrypted value under the cipher's first key; counts per table."""
    counts: dict[str, int] = {}
    columns: list[tuple[str, Any, str]] = [
        ("installations", Installation, "auth_token_encrypted"),
        ("webhook_subscriptions", WebhookSubscription, "token_encrypted"),
        ("custom_webhook_sources", CustomWebhookSource, "secrets_encrypted"),
    ]
    for table, model, column in columns:
        async with sessions.begin() as session:
            rows = (await session.execute(select(model).where(getattr(model, column).is_not(None)))).scalars()
            n = 0
            for row in rows:
                setattr(row, column, cipher.rotate(getattr(row, column)))
                n += 1
        counts[table] = n
    async with sessions.begin() as session:
        n = 0
        for flow in (await session.execute(select(Flow))).scalars():
            actions, found = reencrypt(list(flow.actions or []), cipher.rotate)
            if found:
                flow.actions = actions
                n += found
        counts["flows"] = n
    async with sessions.begin() as session:
        n = 0
        for job in (await session.execute(select(Job).where(Job.kind == "unregister_webhooks"))).scalars():
            token = (job.params or {}).get("token")
            if isinstance(token, str):
                job.params = {**job.params, "token": cipher.rotate(token)}
                n += 1
        counts["jobs"] = n
    return counts
