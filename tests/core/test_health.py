"""/healthz, /ready and /metrics on a real app; /ready follows the database and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.engine import make_url

from clockify_addon.app import create_app as create_addon_app
from clockify_addon.settings import Settings as AddonSettings
from clockify_core.testing.apps import running_app
from clockify_core.testing.proxy import TcpProxy


@pytest.fixture
async def pg_proxy(pg_url: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    url = make_url(pg_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    await proxy.aclose()


async def _wait_status(client: httpx.AsyncClient, path: str, status: int, timeout: float = 20) -> httpx.Response:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        r = await client.get(path)
        if r.status_code == status or asyncio.get_running_loop().time() > deadline:
            return r
        await asyncio.sleep(0.2)


async def test_ready_follows_the_database_without_a_restart(pg_proxy: tuple[TcpProxy, str]) -> None:
    proxy, url = pg_proxy
    app = create_addon_app(AddonSettings(database={"url": url}, worker={"enabled": False}))
    async with running_app(app) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        r = await client.get("/ready")
        assert r.status_code == 200, r.text
        assert r.json() == {"status": "ready", "checks": {"database": "ok"}}
        assert (await client.get("/health")).status_code == 200

        await proxy.cut()
        r = await _wait_status(client, "/ready", 503)
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/problem+json"
        body = r.json()
        assert "database" in body["detail"]
        assert body["checks"]["database"] != "ok"
        assert (await client.get("/healthz")).status_code == 200  # alive, just not ready

        await proxy.restore()
        r = await _wait_status(client, "/ready", 200)
        assert r.status_code == 200, r.text


async def test_ready_names_redis_when_it_is_configured_and_down(sqlite_url: str) -> None:
    settings = AddonSettings(database={"url": sqlite_url}, redis={"url": "redis://127.0.0.1:1/0"}, worker={"enabled": False})
    async with running_app(create_addon_app(settings)) as client:
        r = await client.get("/ready")
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/problem+json"
        body = r.json()
        assert body["checks"]["database"] == "ok"
        assert body["checks"]["redis"] != "ok"
        assert "redis" in body["detail"]


async def test_redis_can_be_made_optional_for_readiness(sqlite_url: str) -> None:
    # Operators may keep instances in rotation through a Redis outage: limits fall back
    # to in-process buckets and everything else works (docs/reliability.md).
    settings = AddonSettings(
        database={"url": sqlite_url}, redis={"url": "redis://127.0.0.1:1/0", "required_for_ready": False},
        worker={"enabled": False},
    )
    async with running_app(create_addon_app(settings)) as client:
        r = await client.get("/ready")
        assert r.status_code == 200
        assert r.json()["status"] == "degraded"
        assert r.json()["checks"]["redis"] != "ok"


async def test_ready_reports_unmigrated_database(pg_empty_url: str) -> None:
    settings = AddonSettings(database={"url": pg_empty_url, "run_migrations": False}, worker={"enabled": False})
    async with running_app(create_addon_app(settings)) as client:
        r = await client.get("/ready")
        assert r.status_code == 503
        assert "migrations" in r.json()["detail"]


async def test_metrics_and_request_ids(sqlite_url: str, redis_server_url: str) -> None:
    settings = AddonSettings(database={"url": sqlite_url}, redis={"url": redis_server_url}, worker={"enabled": False})
    async with running_app(create_addon_app(settings)) as client:
        assert (await client.get("/ready")).status_code == 200
        r = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        assert r.headers["x-request-id"] == "abc-123"
        generated = (await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})).headers["x-request-id"]
        assert generated != "bad id with spaces"
        assert len(generated) == 32
        await client.get("/no/such/route/12345")
        text = (await client.get("/metrics")).text
        assert "addon_uptime_seconds" in text
        assert 'http_requests_total{method="GET",route="/healthz",status="200"} 2.0' in text
        assert 'route="<unmatched>"' in text
        assert "12345" not in text
        assert "http_request_duration_seconds_bucket" in text
        for name in ("webhooks_received_total", "flows_executed_total", "api_calls_total", "bootstrap_jobs_total"):
            assert f"# HELP {name} " in text
