"""PostgreSQL goes away during webhook traffic, then comes back; the service is never restarted.

The service reaches PostgreSQL through a TCP proxy that the test cuts (open connections
reset, new ones refused) and restores. Clockify's side is the simulator, which retries a
delivery until it gets a 2xx. Guarantees checked: during the outage webhooks get 503
problem+json with Retry-After (never a 500) and /ready names the database; afterwards
/ready is 200, every delivery lands exactly once in the inbox with its whole body, and the
worker applies all of them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from clockify_core.simulator.testing import ServedSimulator
from tests.chaos.support import (
    Db,
    ThreadedProxy,
    install,
    report,
    service,
    wait_until,
    webhook_token,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(180)]

EVENT = "NEW_TIME_ENTRY"
SAMPLE = Path(__file__).parents[1] / "fixtures" / "samples" / f"{EVENT}.json"


def _probe(workspace_id: str, n: int) -> bytes:
    body = json.loads(SAMPLE.read_text())
    body.update(workspaceId=workspace_id, id=f"c4a05{n:019x}", description=f"outage probe {n}")
    return json.dumps(body).encode()


def test_postgres_outage_answers_503_and_recovers_without_restart(
    simulator_server: ServedSimulator, pg_url: str, make_proxy: Callable[[str, int], ThreadedProxy], tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    sim, db = simulator_server, Db(pg_url)
    url = make_url(pg_url)
    proxy = make_proxy(url.host or "127.0.0.1", url.port or 5432)
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    proc = service(
        sim, proxied, tmp_path / "service.log",
        # A worker that loses the database mid-event cannot record the failure either; the
        # event is claimed again when its lease runs out, so a short lease keeps the test short.
        CLOCKIFY_DATABASE__POOL_TIMEOUT="2", CLOCKIFY_WORKER__BATCH_SIZE="20", CLOCKIFY_WORKER__LEASE_SECONDS="3",
    ).start()
    try:
        proc.wait_ready()
        installed = install(sim, proc, db)
        workspace_id, addon_id = installed["workspaceId"], installed["addonId"]
        path, token = webhook_token(db, EVENT)
        headers = {"Clockify-Signature": token, "Clockify-Webhook-Event-Type": EVENT, "Content-Type": "application/json"}
        pid = proc.proc.pid if proc.proc else None
        # Clockify retries a failed delivery; 10 attempts from 200 ms doubling outlast the outage.
        sim.control.put("/__sim/delivery", json={"max_attempts": 10, "retry_backoff_ms": 200, "concurrency": 4}).raise_for_status()
        sim.control.post("/__sim/traffic", json={"rate": 25, "duration": 8, "workspaceId": workspace_id}).raise_for_status()

        with httpx.Client(base_url=proc.url, timeout=15) as client:
            time.sleep(2)
            proxy.cut()
            cut = time.monotonic()
            ready = wait_until(lambda: (r := client.get("/ready")).status_code == 503 and r, timeout=10, what="/ready 503")
            assert ready.headers["content-type"] == "application/problem+json"
            assert "database" in ready.json()["detail"]
            assert ready.json()["checks"]["database"] != "ok"
            # A delivery now: refused with 503 and Retry-After, so Clockify comes back; never a 500.
            for n in range(5):
                r = client.post(path, content=_probe(workspace_id, n), headers=headers)
                assert r.status_code == 503, r.text
                assert r.headers["content-type"] == "application/problem+json"
                assert r.headers["retry-after"] == "5"
                time.sleep(0.3)
            time.sleep(2)
            proxy.restore()
            restored = time.monotonic()
            outage = restored - cut
            wait_until(lambda: client.get("/ready").status_code == 200, timeout=30, what="/ready 200 after restore")
            recovery = time.monotonic() - restored
            # What Clockify would retry now is accepted, once each.
            for n in range(5):
                def accepted(n: int = n) -> bool:
                    return client.post(path, content=_probe(workspace_id, n), headers=headers).status_code == 200
                wait_until(accepted, timeout=15, what=f"probe {n} accepted after the restore")

        wait_until(lambda: not sim.control.get("/__sim/traffic").json()["running"], timeout=60, what="traffic to end")
        drained = sim.control.post("/__sim/deliveries/drain", json={"timeout": 60}).raise_for_status().json()
        assert drained["drained"], drained
        assert proc.proc is not None
        assert proc.proc.poll() is None
        assert proc.proc.pid == pid  # the same process throughout: recovered without a restart

        deliveries = sim.server.server.config.app.state.simulator.delivery.query(addon_id=addon_id)
        statuses = [a.status_code for d in deliveries for a in d.attempts]
        assert 503 in statuses, "the outage hit no delivery; the test proves nothing"
        assert all(code in (200, 503) for code in statuses), sorted(set(map(str, statuses)))
        assert all(d.status == "delivered" for d in deliveries), [d.summary() for d in deliveries if d.status != "delivered"]

        # Exactly once, whole: the inbox holds each delivered (event, body) once, plus the 5 probes.
        delivered = {(d.event, d.body.decode()) for d in deliveries}
        def settled() -> list[tuple[str, str, str]] | None:
            rows = db.rows("SELECT event_type, body, status FROM inbox_events")
            return rows if all(r.status == "DONE" for r in rows) else None
        rows = wait_until(settled, timeout=60, what="the worker to apply every event")
        stored = [(r.event_type, r.body) for r in rows]
        probes = {(EVENT, _probe(workspace_id, n).decode()) for n in range(5)}
        assert len(stored) == len(set(stored)) == len(delivered) + len(probes)
        assert set(stored) == delivered | probes
        assert all(json.loads(body) for _, body in stored)
        report(request, "postgres outage", f"{len(deliveries)} deliveries, {statuses.count(503)} attempts answered 503, "
               f"at most {max(len(d.attempts) for d in deliveries)} attempts for one; /ready 200 {recovery:.2f} s "
               f"after the restore of a {outage:.1f} s outage; {len(stored)} inbox rows, all DONE")
    finally:
        proc.kill()
