"""Quotas of custom webhook sources (clockify_core/webhooks/quota.py), through HTTP on universal_webhook:
a request rate, a byte rate and a largest body per source, in-process and shared through Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

import universal_webhook.app
import universal_webhook.settings
from clockify_core.errors import PROBLEM_CONTENT_TYPE
from clockify_core.security.hmac import signed_headers
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import AddonHarness, installed_addon
from clockify_core.webhooks.models import InboxEvent


@pytest.fixture
async def uw(simulator: InProcessSimulator, pg_url: str) -> AsyncIterator[AddonHarness]:
    async with installed_addon(
        simulator, universal_webhook.app.create_app, universal_webhook.settings.Settings, db_url=pg_url
    ) as harness:
        yield harness


def _admin(uw: AddonHarness) -> dict[str, str]:
    return {"X-Addon-Token": uw.user_token(role="OWNER")}


async def _source(uw: AddonHarness, **fields: Any) -> dict[str, Any]:
    created = await uw.client.post("/api/custom-sources", json={"name": "shop", **fields}, headers=_admin(uw))
    assert created.status_code == 201, created.text
    return dict(created.json())


_sent = 0


async def _send(
    uw: AddonHarness, source: dict[str, Any], body: bytes = b'{"order": 1}', *, secret: str | None = None
) -> httpx.Response:
    global _sent
    _sent += 1
    headers = signed_headers(secret or source["secret"], body, int(time.time()), webhook_id=f"msg_{_sent}")
    return await uw.client.post(
        httpx.URL(source["url"]).path, content=body, headers={"Content-Type": "application/json", **headers}
    )


def _padded(size: int) -> bytes:
    """A JSON body of exactly ``size`` bytes."""
    return b'{"pad": "' + b"a" * (size - 11) + b'"}'


async def _stored(uw: AddonHarness, source: dict[str, Any]) -> int:
    async with uw.runtime.sessions() as s:
        count = await s.scalar(select(func.count()).where(InboxEvent.source_ref == source["id"]))
    return int(count or 0)


def _refusal(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith(PROBLEM_CONTENT_TYPE)
    body: dict[str, Any] = response.json()
    return body


async def test_twenty_1_mib_bodies_run_into_the_default_byte_quota(uw: AddonHarness) -> None:
    """The issue's 20 x 1 MiB: the default quota (8 MiB a minute) accepts the first eight."""
    source = await _source(uw)
    answers = [await _send(uw, source, _padded(1024 * 1024)) for _ in range(20)]

    statuses = [r.status_code for r in answers]
    assert statuses == [200] * 8 + [429] * 12, statuses
    problem = _refusal(answers[8], 429)
    assert problem["reason"] == "bytes"
    assert "8388608 body bytes per minute" in problem["detail"]
    assert int(answers[8].headers["Retry-After"]) >= 1
    assert await _stored(uw, source) == 8


async def test_the_request_rate_is_per_source(uw: AddonHarness) -> None:
    limited = await _source(uw, quota={"requests_per_second": 0.01, "burst": 3})
    other = await _source(uw)

    statuses = [(await _send(uw, limited)).status_code for _ in range(3)]
    refused = await _send(uw, limited)
    assert statuses == [200, 200, 200]
    problem = _refusal(refused, 429)
    assert problem["reason"] == "requests"
    assert problem["title"] == "Too many requests"
    assert "0.01 requests/s (burst 3)" in problem["detail"]
    # 1 token at 0.01/s: 100 s away.
    assert int(refused.headers["Retry-After"]) >= 90
    assert (await _send(uw, other)).status_code == 200, "another source has its own quota"
    assert await _stored(uw, limited) == 3


async def test_unsigned_requests_do_not_spend_the_quota(uw: AddonHarness) -> None:
    """The quota is charged after the signature check: someone with the URL but not the secret
    cannot lock the real sender out."""
    source = await _source(uw, quota={"requests_per_second": 0.01, "burst": 2, "bytes_per_minute": 4096})
    forged = "whsec_" + "QUJD" * 11
    for _ in range(10):
        _refusal(await _send(uw, source, _padded(3000), secret=forged), 401)

    assert [(await _send(uw, source)).status_code for _ in range(2)] == [200, 200]
    assert (await _send(uw, source)).status_code == 429


async def test_a_body_over_the_source_limit_is_413_before_it_is_read(uw: AddonHarness) -> None:
    source = await _source(uw, quota={"max_body_bytes": 2048})

    too_big = _refusal(await _send(uw, source, _padded(2049)), 413)
    assert "2048 byte limit" in too_big["detail"]
    assert (await _send(uw, source, _padded(2048))).status_code == 200
    assert await _stored(uw, source) == 1


async def test_the_quota_is_read_and_set_per_source(uw: AddonHarness) -> None:
    source = await _source(uw)
    path = f"/api/custom-sources/{source['id']}/quota"

    defaults = await uw.client.get(path, headers=_admin(uw))
    assert defaults.json() == {
        "requests_per_second": 10.0, "burst": 20, "bytes_per_minute": 8 * 1024 * 1024, "max_body_bytes": 1024 * 1024,
    }
    updated = await uw.client.put(path, json={"burst": 1, "bytes_per_minute": 65536}, headers=_admin(uw))
    assert updated.status_code == 200, updated.text
    assert updated.json() == {
        "requests_per_second": 10.0, "burst": 1, "bytes_per_minute": 65536, "max_body_bytes": 65536,
    }
    assert (await uw.client.get(path, headers=_admin(uw))).json() == updated.json()
    # The new quota applies to the next message.
    assert (await _send(uw, source, _padded(65537))).status_code == 413
    assert (await _send(uw, source)).status_code == 200
    assert _refusal(await _send(uw, source), 429)["reason"] == "requests"

    impossible = await uw.client.put(
        path, json={"bytes_per_minute": 4096, "max_body_bytes": 8192}, headers=_admin(uw)
    )
    assert impossible.status_code == 422
    assert "max_body_bytes must not exceed bytes_per_minute" in impossible.text
    assert (await uw.client.put(path, json={"burst": 0}, headers=_admin(uw))).status_code == 422
    member = await uw.client.put(path, json={}, headers={"X-Addon-Token": uw.user_token(role="TEAM_MEMBER")})
    assert member.status_code == 403
    reset = await uw.client.put(path, json={}, headers=_admin(uw))
    assert reset.json() == defaults.json()


async def test_an_admin_cannot_raise_a_source_above_the_operator_defaults(uw: AddonHarness) -> None:
    """The quota protects the other workspaces from this one's admin: they may only tighten it."""
    lavish = {"requests_per_second": 10_000, "burst": 100_000, "bytes_per_minute": 1024**3,
              "max_body_bytes": 64 * 1024**2}
    source = await _source(uw, quota=lavish)
    path = f"/api/custom-sources/{source['id']}/quota"
    defaults = {"requests_per_second": 10.0, "burst": 20, "bytes_per_minute": 8 * 1024 * 1024,
                "max_body_bytes": 1024 * 1024}
    assert (await uw.client.get(path, headers=_admin(uw))).json() == defaults
    assert (await uw.client.put(path, json=lavish, headers=_admin(uw))).json() == defaults
    assert (await _send(uw, source, _padded(1024 * 1024 + 1))).status_code == 413
    for _ in range(100):  # the burst of 20, and whatever the rate of 10/s refills meanwhile
        answer = await _send(uw, source)
        if answer.status_code != 200:
            break
    assert "10 requests/s (burst 20)" in _refusal(answer, 429)["detail"]


async def test_two_instances_sharing_redis_share_one_quota(
    simulator: InProcessSimulator, pg_url: str, redis_server_url: str, redis_prefix: str
) -> None:
    redis = {"url": redis_server_url, "key_prefix": redis_prefix}
    create = universal_webhook.app.create_app
    settings = universal_webhook.settings.Settings
    async with (
        installed_addon(simulator, create, settings, db_url=pg_url, redis=redis) as first,
        installed_addon(
            simulator, create, settings, db_url=pg_url, redis=redis, install=False, base_url="http://addon-2.test"
        ) as second,
    ):
        source = await _source(first, quota={"requests_per_second": 0.01, "burst": 4})
        answers = []
        for n in range(6):  # alternate between the instances
            answers.append((await _send(first if n % 2 == 0 else second, source)).status_code)
        assert answers == [200, 200, 200, 200, 429, 429]
        assert await _stored(first, source) == 4


async def test_without_redis_each_instance_counts_alone(simulator: InProcessSimulator, pg_url: str) -> None:
    """The in-process limiter: the same source's quota is spent per process (why Redis matters)."""
    create = universal_webhook.app.create_app
    settings = universal_webhook.settings.Settings
    async with (
        installed_addon(simulator, create, settings, db_url=pg_url) as first,
        installed_addon(
            simulator, create, settings, db_url=pg_url, install=False, base_url="http://addon-2.test"
        ) as second,
    ):
        source = await _source(first, quota={"requests_per_second": 0.01, "burst": 1})
        assert (await _send(first, source)).status_code == 200
        assert (await _send(first, source)).status_code == 429
        assert (await _send(second, source)).status_code == 200


async def test_concurrent_creates_never_exceed_the_sources_limit(simulator: InProcessSimulator, db_url: str) -> None:
    # Each source carries its own quota, so the number of sources bounds a workspace's share.
    async with installed_addon(
        simulator, universal_webhook.app.create_app, universal_webhook.settings.Settings, db_url=db_url,
        webhooks={"max_custom_sources_per_workspace": 3},
    ) as uw:
        responses = await asyncio.gather(*(
            uw.client.post("/api/custom-sources", json={"name": f"shop {i}"}, headers=_admin(uw)) for i in range(12)
        ))
        assert sorted(r.status_code for r in responses) == [201] * 3 + [409] * 9, [r.text for r in responses]
        refused = next(r for r in responses if r.status_code == 409)
        assert refused.headers["content-type"] == "application/problem+json"
        assert "WEBHOOKS__MAX_CUSTOM_SOURCES_PER_WORKSPACE" in refused.json()["detail"]
        listed = await uw.client.get("/api/custom-sources", headers=_admin(uw))
        assert len(listed.json()) == 3
