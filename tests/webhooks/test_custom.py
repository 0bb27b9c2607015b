"""Custom webhook sources on universal_webhook: Standard Webhooks signatures, rotation, dedup by webhook-id."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

import universal_webhook.app
import universal_webhook.settings
from clockify_core.security.hmac import secret_key, sign, signed_headers
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import AddonHarness, installed_addon
from clockify_core.webhooks.models import CustomWebhookSource, InboxEvent

BODY = b'{"order": 42, "total": 99.5}'


@pytest.fixture
async def uw(simulator: InProcessSimulator, pg_url: str) -> AsyncIterator[AddonHarness]:
    # Uninstalled workspaces keep their rows for a while, so a source outlives its installation.
    async with installed_addon(
        simulator,
        universal_webhook.app.create_app,
        universal_webhook.settings.Settings,
        db_url=pg_url,
        lifecycle={"retention_days": 30},
    ) as harness:
        yield harness


def _admin(uw: AddonHarness) -> dict[str, str]:
    return {"X-Addon-Token": uw.user_token(role="OWNER")}


async def _source(uw: AddonHarness, **fields: Any) -> dict[str, Any]:
    created = await uw.client.post(
        "/api/custom-sources", json={"name": "shop", **fields}, headers=_admin(uw)
    )
    assert created.status_code == 201, created.text
    return dict(created.json())


async def _send(
    uw: AddonHarness,
    source: dict[str, Any],
    headers: dict[str, str],
    body: bytes = BODY,
) -> httpx.Response:
    path = httpx.URL(source["url"]).path
    return await uw.client.post(
        path, content=body, headers={"Content-Type": "application/json", **headers}
    )


async def _stored(uw: AddonHarness) -> list[InboxEvent]:
    async with uw.runtime.sessions() as s:
        return list((await s.execute(select(InboxEvent).order_by(InboxEvent.id))).scalars())


def _now() -> int:
    return int(time.time())


async def test_a_signed_event_is_accepted_and_stored(uw: AddonHarness) -> None:
    source = await _source(uw)
    assert source["secret"].startswith("whsec_")
    assert len(secret_key(source["secret"])) == 32
    assert set(source) == {
        "id",
        "name",
        "url",
        "tolerance_seconds",
        "enabled",
        "created_at",
        "secret",
    }

    r = await _send(
        uw,
        source,
        {
            **signed_headers(source["secret"], BODY, _now(), webhook_id="msg_1"),
            "X-Event-Type": "order.paid",
        },
    )

    assert r.status_code == 200, r.text
    [row] = await _stored(uw)
    assert r.json() == {"status": "accepted", "id": row.id}
    assert (row.source, row.source_ref, row.event_type, row.body) == (
        "custom",
        source["id"],
        "order.paid",
        BODY.decode(),
    )
    assert row.workspace_id == uw.workspace_id
    listed = (await uw.client.get("/api/custom-sources", headers=_admin(uw))).json()
    assert [s["id"] for s in listed] == [source["id"]]
    assert "secret" not in listed[0]


async def test_one_valid_signature_among_several_is_enough(uw: AddonHarness) -> None:
    source = await _source(uw)
    now = _now()
    good = sign(source["secret"], "msg_multi", now, BODY)
    wrong = sign(b"some-other-secret-0123456789", "msg_multi", now, BODY)
    headers = {
        "webhook-id": "msg_multi",
        "webhook-timestamp": str(now),
        "webhook-signature": f"{wrong} v1a,{base64.b64encode(bytes(64)).decode()} {good}",
    }

    r = await _send(uw, source, headers)

    assert r.status_code == 200, r.text
    assert len(await _stored(uw)) == 1


def _forgeries(secret: str, now: int) -> dict[str, tuple[dict[str, str], bytes, str]]:
    """name: (headers, body, reason) of requests that must be refused with 401."""
    good = signed_headers(secret, BODY, now, webhook_id="msg_f")

    def without(name: str) -> dict[str, str]:
        return {k: v for k, v in good.items() if k != name}

    return {
        "wrong secret": (
            signed_headers(
                "whsec_" + base64.b64encode(b"w" * 32).decode(), BODY, now, webhook_id="msg_f"
            ),
            BODY,
            "signature does not match",
        ),
        "legacy scheme": (
            {"X-Timestamp": str(now), "X-Signature": "sha256=" + "0" * 64},
            BODY,
            "webhook-id header is missing",
        ),
        "tampered body": (good, BODY.replace(b"42", b"43"), "signature does not match"),
        "tampered id": ({**good, "webhook-id": "msg_g"}, BODY, "signature does not match"),
        "tampered timestamp": (
            {**good, "webhook-timestamp": str(now + 1)},
            BODY,
            "signature does not match",
        ),
        "stale timestamp": (
            signed_headers(secret, BODY, now - 301, webhook_id="msg_f"),
            BODY,
            "webhook-timestamp is more than 300 s old",
        ),
        "future timestamp": (
            signed_headers(secret, BODY, now + 3600, webhook_id="msg_f"),
            BODY,
            "webhook-timestamp is more than 300 s in the future",
        ),
        "missing webhook-id": (without("webhook-id"), BODY, "webhook-id header is missing"),
        "missing webhook-timestamp": (
            without("webhook-timestamp"),
            BODY,
            "webhook-timestamp header is missing",
        ),
        "missing webhook-signature": (
            without("webhook-signature"),
            BODY,
            "webhook-signature header is missing",
        ),
        "malformed signature": (
            {**good, "webhook-signature": "v1,not-base64!"},
            BODY,
            "webhook-signature v1 entries must be the base64 of a 32-byte HMAC-SHA256",
        ),
        "unsigned version only": (
            {**good, "webhook-signature": good["webhook-signature"].replace("v1,", "v2,")},
            BODY,
            "webhook-signature header has no v1 signature",
        ),
        "id too long": (
            signed_headers(secret, BODY, now, webhook_id="m" * 256),
            BODY,
            "webhook-id header must be 1-255 printable ASCII characters",
        ),
    }


async def test_forgeries_are_refused_with_a_reason_and_store_nothing(uw: AddonHarness) -> None:
    source = await _source(uw)
    for name, (headers, body, reason) in _forgeries(source["secret"], _now()).items():
        r = await _send(uw, source, headers, body)
        assert r.status_code == 401, (name, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json", name
        assert r.json()["detail"] == reason, name
    assert await _stored(uw) == []


async def test_a_header_sent_twice_is_refused(uw: AddonHarness) -> None:
    source = await _source(uw)
    headers = signed_headers(source["secret"], BODY, _now())
    r = await uw.client.post(
        httpx.URL(source["url"]).path,
        content=BODY,
        headers=[*headers.items(), ("webhook-id", "msg_other")],
    )
    assert r.status_code == 400
    assert r.json()["detail"] == "webhook-id header appears more than once"
    assert await _stored(uw) == []


async def test_unknown_disabled_and_uninstalled_sources_are_not_found(
    uw: AddonHarness, simulator: InProcessSimulator
) -> None:
    source, other = await _source(uw), await _source(uw, name="other")
    now = _now()

    unknown = await uw.client.post(
        "/webhooks/custom/nope", content=BODY, headers=signed_headers(source["secret"], BODY, now)
    )
    assert unknown.status_code == 404
    async with uw.runtime.sessions() as s, s.begin():
        await s.execute(
            update(CustomWebhookSource)
            .where(CustomWebhookSource.id == other["id"])
            .values(enabled=False)
        )
    disabled = await _send(uw, other, signed_headers(other["secret"], BODY, now))
    assert disabled.status_code == 404

    assert uw.installation is not None
    await simulator.sim.marketplace.uninstall(uw.installation.addon_id)
    await uw.process()
    async with uw.runtime.sessions() as s:
        assert (
            await s.get(CustomWebhookSource, source["id"]) is not None
        )  # kept for the retention period
    uninstalled = await _send(uw, source, signed_headers(source["secret"], BODY, now))
    assert uninstalled.status_code == 404
    assert [r.headers["content-type"] for r in (unknown, disabled, uninstalled)] == [
        "application/problem+json"
    ] * 3
    assert await _stored(uw) == []


async def test_rotation_keeps_the_previous_secret_valid_until_the_next_one(
    uw: AddonHarness,
) -> None:
    source = await _source(uw)
    first = source["secret"]
    rotate = f"/api/custom-sources/{source['id']}/rotate"
    second = (await uw.client.post(rotate, headers=_admin(uw))).json()["secret"]
    now = _now()

    for n, secret in enumerate((first, second)):
        r = await _send(uw, source, signed_headers(secret, BODY, now, webhook_id=f"msg_r{n}"))
        assert r.status_code == 200, r.text

    third = (await uw.client.post(rotate, headers=_admin(uw))).json()["secret"]
    assert len({first, second, third}) == 3
    assert third.startswith("whsec_")
    refused = await _send(uw, source, signed_headers(first, BODY, now, webhook_id="msg_r2"))
    assert (refused.status_code, refused.json()["detail"]) == (401, "signature does not match")
    for n, secret in enumerate((second, third), start=3):
        r = await _send(uw, source, signed_headers(secret, BODY, now, webhook_id=f"msg_r{n}"))
        assert r.status_code == 200, r.text
    assert len(await _stored(uw)) == 4


async def test_a_webhook_id_is_stored_once_whatever_the_body(uw: AddonHarness) -> None:
    source, other = await _source(uw), await _source(uw, name="other")
    now = _now()
    first = await _send(
        uw, source, signed_headers(source["secret"], BODY, now, webhook_id="msg_dup")
    )
    # A retry: same id, re-signed later, with a different body and event type.
    retry_body = b'{"order": 42, "total": 100}'
    retry = await _send(
        uw,
        source,
        {
            **signed_headers(source["secret"], retry_body, now + 5, webhook_id="msg_dup"),
            "X-Event-Type": "order.updated",
        },
        retry_body,
    )
    # The same id from another source is another message; an equal body under a new id too.
    elsewhere = await _send(
        uw, other, signed_headers(other["secret"], BODY, now, webhook_id="msg_dup")
    )
    new_id = await _send(
        uw, source, signed_headers(source["secret"], BODY, now, webhook_id="msg_new")
    )

    assert first.json()["status"] == "accepted"
    assert retry.status_code == 200
    assert retry.json() == {"status": "duplicate", "id": None}
    assert (elsewhere.json()["status"], new_id.json()["status"]) == ("accepted", "accepted")
    rows = await _stored(uw)
    assert [(r.source_ref, r.body, r.deliveries) for r in rows] == [
        (source["id"], BODY.decode(), 2),
        (other["id"], BODY.decode(), 1),
        (source["id"], BODY.decode(), 1),
    ]
    async with uw.runtime.sessions() as s:
        assert await s.scalar(select(func.count(func.distinct(InboxEvent.dedup_key)))) == 3


@pytest.mark.parametrize(
    ("secret", "status"),
    [
        pytest.param("whsec_" + base64.b64encode(b"s" * 24).decode(), 201, id="whsec"),
        pytest.param("a-chosen-plain-secret-0123", 201, id="plain"),
        pytest.param("whsec_" + base64.b64encode(b"s" * 15).decode(), 422, id="whsec-short"),
        pytest.param("whsec_this is not base64!", 422, id="whsec-not-base64"),
        pytest.param("short", 422, id="plain-short"),
    ],
)
async def test_a_chosen_secret_is_checked_and_then_signs(
    uw: AddonHarness, secret: str, status: int
) -> None:
    created = await uw.client.post(
        "/api/custom-sources", json={"name": "shop", "secret": secret}, headers=_admin(uw)
    )

    assert created.status_code == status, created.text
    if status == 201:
        source = created.json()
        assert source["secret"] == secret
        r = await _send(uw, source, signed_headers(secret, BODY, _now()))
        assert r.status_code == 200, r.text


async def test_tolerance_is_per_source(uw: AddonHarness) -> None:
    source = await _source(uw, tolerance_seconds=3600)
    assert source["tolerance_seconds"] == 3600

    r = await _send(uw, source, signed_headers(source["secret"], BODY, _now() - 1800))

    assert r.status_code == 200, r.text


async def test_only_admins_manage_sources_and_a_deleted_source_stops(uw: AddonHarness) -> None:
    user = {"X-Addon-Token": uw.user_token(role="USER")}
    assert (
        await uw.client.post("/api/custom-sources", json={"name": "x"}, headers=user)
    ).status_code == 403
    source = await _source(uw)
    assert (
        await uw.client.delete(f"/api/custom-sources/{source['id']}", headers=_admin(uw))
    ).status_code == 204
    gone = await _send(uw, source, signed_headers(source["secret"], BODY, _now()))
    assert gone.status_code == 404


@pytest.mark.parametrize(
    ("body", "header", "expected"),
    [
        pytest.param(b'{"type": "invoice.paid", "data": {}}', None, "invoice.paid", id="payload-type"),
        pytest.param(b'{"type": "invoice.paid"}', "order.paid", "order.paid", id="header-wins"),
        pytest.param(b'{"type": "not a type!"}', None, "CUSTOM", id="odd-type"),
        pytest.param(b'{"type": "order.created\\n"}', None, "CUSTOM", id="trailing-newline"),
        pytest.param(b"[1, 2]", None, "CUSTOM", id="not-an-object"),
    ],
)
async def test_the_event_type_comes_from_the_header_or_the_payload(
    uw: AddonHarness, body: bytes, header: str | None, expected: str
) -> None:
    source = await _source(uw)
    headers = signed_headers(source["secret"], body, _now())
    if header is not None:
        headers["X-Event-Type"] = header
    r = await _send(uw, source, headers, body)
    assert r.status_code == 200, r.text
    [row] = await _stored(uw)
    assert row.event_type == expected
