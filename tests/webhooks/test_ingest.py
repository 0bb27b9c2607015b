"""The receiver's fast path: group commit keeps each answer tied to its own committed row, and
a cached subscription never lets a revoked token store anything."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, update

import clockify_addon.app
import clockify_addon.settings
from clockify_core.installations.models import SubscriptionStatus, WebhookSubscription
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import AddonHarness, installed_addon
from clockify_core.webhooks.ingest import WebhookIngest
from clockify_core.webhooks.models import InboxEvent

EVENT = "NEW_TIME_ENTRY"
SAMPLE = json.loads((Path(__file__).parents[1] / "fixtures" / "samples" / f"{EVENT}.json").read_text())


@pytest.fixture
async def addon(simulator: InProcessSimulator, db_url: str) -> AsyncIterator[AddonHarness]:
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=db_url
    ) as harness:
        await harness.process()
        yield harness


async def _subscription(addon: AddonHarness) -> WebhookSubscription:
    async with addon.runtime.sessions() as s:
        sub = await s.scalar(select(WebhookSubscription).where(WebhookSubscription.event_type == EVENT))
    assert sub is not None
    assert sub.token_encrypted
    return sub


def _body(addon: AddonHarness, label: str) -> bytes:
    """A distinct entry per label, under a Clockify-shaped id (24 hex characters)."""
    entry_id = hashlib.sha256(label.encode()).hexdigest()[:24]
    return json.dumps({**SAMPLE, "workspaceId": addon.workspace_id, "id": entry_id, "description": label}).encode()


async def _post(addon: AddonHarness, path: str, token: str, body: bytes) -> httpx.Response:
    headers = {"Clockify-Signature": token, "Clockify-Webhook-Event-Type": EVENT, "Content-Type": "application/json"}
    return await addon.client.post(path, content=body, headers=headers)


async def _rows(addon: AddonHarness) -> list[InboxEvent]:
    async with addon.runtime.sessions() as s:
        return list((await s.execute(select(InboxEvent).order_by(InboxEvent.id))).scalars())


async def test_concurrent_deliveries_share_writes_and_each_gets_its_own_row(addon: AddonHarness) -> None:
    sub = await _subscription(addon)
    token = addon.runtime.cipher.decrypt(sub.token_encrypted or "")
    bodies = [_body(addon, f"entry-{n}") for n in range(40)] + [_body(addon, "entry-7")] * 3
    answers = await asyncio.gather(*(_post(addon, sub.path, token, b) for b in bodies))

    assert [r.status_code for r in answers] == [200] * len(bodies)
    rows = await _rows(addon)
    by_body = {row.body: row for row in rows}
    assert len(rows) == 40
    for body, r in zip(bodies, answers, strict=True):
        ack = r.json()
        if ack["status"] == "accepted":
            assert by_body[body.decode()].id == ack["id"]  # the id answered is the row of this body
        else:
            assert ack == {"status": "duplicate", "id": None}
    assert sum(r.json()["status"] == "duplicate" for r in answers) == 3
    assert by_body[_body(addon, "entry-7").decode()].deliveries == 4
    # Fewer writes than events: concurrent requests were committed together.
    batches = addon.runtime.metrics.inbox_batch_size.collect()[0].samples
    count = next(s.value for s in batches if s.name.endswith("_count"))
    assert 1 <= count < len(bodies)


async def test_cached_subscription_cannot_outlive_its_revocation(addon: AddonHarness) -> None:
    """Another instance re-registered the webhook: this one still has the subscription cached,
    but the INSERT re-checks it, so nothing is stored and the token is refused."""
    sub = await _subscription(addon)
    token = addon.runtime.cipher.decrypt(sub.token_encrypted or "")
    assert (await _post(addon, sub.path, token, _body(addon, "before"))).status_code == 200
    async with addon.runtime.sessions() as s:
        await s.execute(
            update(WebhookSubscription).where(WebhookSubscription.id == sub.id).values(status=SubscriptionStatus.REMOVED)
        )
        await s.commit()

    r = await _post(addon, sub.path, token, _body(addon, "after"))
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert [row.body for row in await _rows(addon)] == [_body(addon, "before").decode()]
    # The refusal evicted the cache entry: the next request looks the token up again.
    assert addon.runtime.part(WebhookIngest).subscriptions.get(sub.token_digest or "", sub.path) is None


async def test_an_entity_id_that_is_not_a_clockify_id_is_refused_and_nothing_stored(addon: AddonHarness) -> None:
    """Issue 15 item 10: a 5,000-character id used to be answered 200 and then fail every
    apply; ids are now checked at the door (Clockify ids are 24 hex characters)."""
    sub = await _subscription(addon)
    token = addon.runtime.cipher.decrypt(sub.token_encrypted or "")
    for bad in ("x" * 5000, "64f0c0ffee0000000000e00", "64f0c0ffee0000000000e00g", "64f0c0ffee0000000000e001 "):
        body = json.dumps({**SAMPLE, "workspaceId": addon.workspace_id, "id": bad}).encode()
        r = await _post(addon, sub.path, token, body)
        assert r.status_code == 400, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["detail"] == "id must be a Clockify id: 24 hexadecimal characters"
    async with addon.runtime.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(InboxEvent)) == 0
    # The same body with a Clockify id is accepted.
    good = json.dumps({**SAMPLE, "workspaceId": addon.workspace_id, "id": "64F0C0FFEE0000000000E001"}).encode()
    assert (await _post(addon, sub.path, token, good)).status_code == 200
