"""The webhook receiver refuses every forgery and stores nothing for it; real deliveries land once."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

import clockify_addon.app
import clockify_addon.settings
from clockify_core.installations.models import WebhookSubscription
from clockify_core.security.signing import KeyPair, TokenSigner
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import AddonHarness, installed_addon
from clockify_core.webhooks.models import InboxEvent

SAMPLES = Path(__file__).parents[1] / "fixtures" / "samples"


@pytest.fixture
async def addon(simulator: InProcessSimulator, pg_url: str) -> AsyncIterator[AddonHarness]:
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url
    ) as harness:
        await harness.process()
        yield harness


async def _token_for(addon: AddonHarness, event: str) -> tuple[str, str]:
    async with addon.runtime.sessions() as s:
        sub = await s.scalar(select(WebhookSubscription).where(WebhookSubscription.event_type == event))
    assert sub is not None
    assert sub.token_encrypted
    return addon.runtime.cipher.decrypt(sub.token_encrypted), sub.path


def _body(event: str, workspace_id: str) -> dict:
    body = json.loads((SAMPLES / f"{event}.json").read_text())
    if "workspaceId" in body:
        body["workspaceId"] = workspace_id
    return body


async def _inbox_count(addon: AddonHarness) -> int:
    async with addon.runtime.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(InboxEvent)))


async def _post(addon: AddonHarness, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await addon.client.post(path, content=body, headers={"content-type": "application/json", **headers})


async def test_valid_delivery_is_accepted_once(addon: AddonHarness) -> None:
    token, path = await _token_for(addon, "NEW_TAG")
    body = json.dumps(_body("NEW_TAG", addon.workspace_id)).encode()
    headers = {"Clockify-Signature": token, "Clockify-Webhook-Event-Type": "NEW_TAG"}
    first = await _post(addon, path, body, headers)
    again = await _post(addon, path, body, headers)
    assert first.status_code == 200
    assert first.json()["status"] == "accepted"
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "id": None}
    assert await _inbox_count(addon) == 1


async def test_webhook_requests_are_counted_under_their_route_template(addon: AddonHarness) -> None:
    # The fast webhook route bypasses FastAPI's router; its traffic must still reach the
    # per-route panels, not the "<unmatched>" bucket scanner 404s share.
    token, path = await _token_for(addon, "NEW_TAG")
    body = json.dumps(_body("NEW_TAG", addon.workspace_id)).encode()
    headers = {"Clockify-Signature": token, "Clockify-Webhook-Event-Type": "NEW_TAG"}
    assert (await _post(addon, path, body, headers)).status_code == 200
    assert (await _post(addon, path, b"{not json", headers)).status_code == 400
    text = (await addon.client.get("/metrics")).text
    assert 'http_requests_total{method="POST",route="/webhooks/{slug}",status="200"} 1.0' in text
    assert 'http_requests_total{method="POST",route="/webhooks/{slug}",status="400"} 1.0' in text
    assert 'http_request_duration_seconds_count{method="POST",route="/webhooks/{slug}"} 2.0' in text
    assert 'method="POST",route="<unmatched>"' not in text


async def test_attacks_are_refused_and_store_nothing(addon: AddonHarness, simulator: InProcessSimulator) -> None:
    ws = addon.workspace_id
    token, path = await _token_for(addon, "NEW_TAG")
    other_token, other_path = await _token_for(addon, "NEW_CLIENT")
    body = json.dumps(_body("NEW_TAG", ws)).encode()
    good = {"Clockify-Signature": token, "Clockify-Webhook-Event-Type": "NEW_TAG"}
    inst = addon.installation
    stranger = TokenSigner(KeyPair.generate().private_pem, addon.settings.signing.addon_key)
    other_addon = TokenSigner(simulator.sim.keys.private_pem, "someone-elses-addon")
    lifecycle = inst.signer.lifecycle_token(ws, inst.addon_id)
    other_ws = inst.signer.webhook_token("another-workspace", inst.addon_id)
    cases: dict[str, tuple[str, bytes, dict[str, str], int]] = {
        "forged signature (other key)": (path, body, {**good, "Clockify-Signature": stranger.webhook_token(ws, inst.addon_id)}, 401),
        "another add-on's key": (path, body, {**good, "Clockify-Signature": other_addon.webhook_token(ws, inst.addon_id)}, 401),
        "token of workspace A on B": (path, body, {**good, "Clockify-Signature": other_ws}, 401),
        "valid token of route X on route Y": (path, body, {**good, "Clockify-Signature": other_token}, 401),
        "lifecycle token on a webhook route": (path, body, {**good, "Clockify-Signature": lifecycle}, 401),
        "missing signature": (path, body, {"Clockify-Webhook-Event-Type": "NEW_TAG"}, 401),
        "missing event header": (path, body, {"Clockify-Signature": token}, 400),
        "wrong event header": (path, body, {**good, "Clockify-Webhook-Event-Type": "NEW_CLIENT"}, 400),
        "garbage token": (path, body, {**good, "Clockify-Signature": "not-a-jwt"}, 401),
        "malformed JSON": (path, b"{not json", good, 400),
        "JSON array body": (path, b"[1,2]", good, 400),
        "body workspace differs": (path, json.dumps({**_body("NEW_TAG", ws), "workspaceId": "zzz"}).encode(), good, 403),
        "oversized body": (path, b'{"x":"' + b"a" * (5 * 1024 * 1024) + b'"}', good, 413),
        "unknown event route": ("/webhooks/not-an-event", body, good, 404),
    }
    for name, (route, payload, headers, status) in cases.items():
        r = await _post(addon, route, payload, headers)
        assert r.status_code == status, (name, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json", name
    assert other_path != path
    assert await _inbox_count(addon) == 0

    # Replay after uninstall.
    await simulator.sim.marketplace.uninstall(inst.addon_id)
    await addon.process()
    r = await _post(addon, path, body, good)
    assert r.status_code == 401
    assert await _inbox_count(addon) == 0


async def test_duplicate_signature_headers_are_refused(addon: AddonHarness) -> None:
    token, path = await _token_for(addon, "NEW_TAG")
    body = json.dumps(_body("NEW_TAG", addon.workspace_id)).encode()
    r = await addon.client.post(
        path, content=body,
        headers=[("Clockify-Signature", token), ("Clockify-Signature", token), ("Clockify-Webhook-Event-Type", "NEW_TAG")],
    )
    assert r.status_code == 400
    assert await _inbox_count(addon) == 0
