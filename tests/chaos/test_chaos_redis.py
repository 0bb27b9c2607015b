"""Redis goes away while the service uses it for shared rate limits, then comes back.

Documented behaviour (clockify_core/ratelimit/redis.py, docs/reliability.md): the limiter
never raises; with the default ``redis_fallback=local`` an in-process bucket at the same
limit takes over, and the shared bucket is used again once a probe succeeds. Webhooks do
not touch Redis at all. /ready answers 503 naming Redis (the readiness contract; operators
can make Redis optional for readiness with ``REDIS__REQUIRED_FOR_READY=false``) while the
instance keeps accepting webhooks and calling Clockify.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from clockify_core.simulator.testing import ServedSimulator
from tests.chaos.support import Db, ThreadedProxy, install, report, service, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(180)]

RATE, BURST = 4.0, 2  # requests/s per (add-on, workspace): small, so limiting is visible in seconds


def _redis_keys(url: str, pattern: str) -> list[bytes]:
    async def scan() -> list[bytes]:
        client = aioredis.from_url(url)
        try:
            return [key async for key in client.scan_iter(match=pattern)]
        finally:
            await client.aclose()

    return asyncio.run(scan())


def _timed_calls(client: httpx.Client, token: str, workspace_id: str, n: int) -> float:
    """Seconds ``n`` explorer calls take (each is one Clockify call through the limiter)."""
    started = time.monotonic()
    for _ in range(n):
        r = client.post("/api/explorer/execute", headers={"X-Addon-Token": token},
                        json={"operationId": "getTags", "pathParams": {"workspaceId": workspace_id}})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == 200
    return time.monotonic() - started


def test_redis_outage_falls_back_to_local_limits_and_recovers(
    simulator_server: ServedSimulator, pg_url: str, redis_server_url: str, redis_prefix: str,
    make_proxy: Callable[[str, int], ThreadedProxy], tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    sim, db = simulator_server, Db(pg_url)
    target = httpx.URL(redis_server_url)
    proxy = make_proxy(target.host or "127.0.0.1", target.port or 6379)
    proxied = str(target.copy_with(host="127.0.0.1", port=proxy.port))
    log = tmp_path / "service.log"
    proc = service(
        sim, pg_url, log, CLOCKIFY_REDIS_URL=proxied, CLOCKIFY_REDIS__KEY_PREFIX=redis_prefix,
        CLOCKIFY_RATE_LIMIT__RATE=str(RATE), CLOCKIFY_RATE_LIMIT__BURST=str(BURST), CLOCKIFY_SYNC__SCHEDULER="false",
        # The explorer calls alone spend the bucket: no history backfill after the bootstrap.
        CLOCKIFY_SYNC__HISTORY_BACKFILL="false",
    ).start()
    try:
        proc.wait_ready()
        installed = install(sim, proc, db)
        # The bootstrap runs after the registration (one job per workspace at a time) and spends
        # the same small bucket: the explorer calls below must have it to themselves.
        wait_until(lambda: {r.status for r in db.rows("SELECT status FROM jobs WHERE kind = 'bootstrap'")} == {"DONE"},
                   timeout=60, what="bootstrap")
        workspace_id, addon_id = installed["workspaceId"], installed["addonId"]
        user = sim.control.post("/__sim/user-token", json={"addonId": addon_id}).raise_for_status().json()["token"]
        pid = proc.proc.pid if proc.proc else None
        n = 8
        floor = (n - BURST) / RATE  # the least time n calls take once the burst is spent

        with httpx.Client(base_url=proc.url, timeout=30) as client:
            assert client.get("/ready").json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}
            time.sleep(BURST / RATE + 0.5)  # registration spent budget; start from a full bucket
            shared = _timed_calls(client, user, workspace_id, n)
            assert shared >= floor * 0.9, shared
            assert _redis_keys(redis_server_url, f"{redis_prefix}ratelimit:*"), "the shared bucket lives in Redis"

            proxy.cut()
            ready = wait_until(lambda: (r := client.get("/ready")).status_code == 503 and r,
                               timeout=10, what="/ready 503")
            assert ready.headers["content-type"] == "application/problem+json"
            assert "redis" in ready.json()["detail"]
            assert ready.json()["checks"]["database"] == "ok"
            assert ready.json()["checks"]["redis"] != "ok"

            # Webhooks keep landing: Clockify gets 200 on the first attempt.
            sim.control.post("/__sim/traffic", json={"rate": 20, "duration": 2, "workspaceId": workspace_id,
                                                     "wait": True}).raise_for_status()
            assert sim.control.post("/__sim/deliveries/drain", json={"timeout": 30}).json()["drained"]
            deliveries = sim.server.server.config.app.state.simulator.delivery.query(addon_id=addon_id)
            assert deliveries
            assert all([a.status_code for a in d.attempts] == [200] for d in deliveries)

            # Clockify calls still go out, limited by the in-process bucket at the same rate.
            time.sleep(BURST / RATE + 0.5)
            local = _timed_calls(client, user, workspace_id, n)
            assert local >= floor * 0.9, local

            proxy.restore()
            wait_until(lambda: client.get("/ready").status_code == 200, timeout=15, what="/ready back to ready")
            # The limiter probes Redis again at most once a second, then spends the shared bucket.
            def shared_again() -> bool:
                _timed_calls(client, user, workspace_id, 1)
                return bool(_redis_keys(redis_server_url, f"{redis_prefix}ratelimit:*"))

            wait_until(shared_again, timeout=10, interval=0.5, what="the limiter to use Redis again")

        assert proc.proc is not None
        assert proc.proc.poll() is None
        assert proc.proc.pid == pid  # no crash, no restart
        events = log.read_text()
        assert '"ratelimit.redis_unavailable"' in events
        assert '"ratelimit.redis_recovered"' in events
        stored = [(r.event_type, r.body) for r in db.rows("SELECT event_type, body FROM inbox_events")]
        assert len(stored) == len(set(stored))
        assert set(stored) == {(d.event, d.body.decode()) for d in deliveries}
        report(request, "redis outage", f"{n} Clockify calls took {shared:.2f} s with the shared bucket and {local:.2f} s "
               f"with the local fallback (floor {floor:.2f} s); {len(deliveries)} webhooks all 200 at the first attempt")
    finally:
        proc.kill()
