"""kill -9 while the simulator's traffic mode is sending: nothing answered 2xx is lost, each
event is applied exactly once after a restart, and the mirror equals the simulator's data.

Real processes: the simulator serves on a loopback port (uvicorn in a thread) and sends
time-entry traffic without waiting (four senders, so several requests are in flight and the
receiver's group commit batches them); the service is a uvicorn subprocess on PostgreSQL
with its workers on, re-fetching every entity from a slowed-down Clockify so the workers
are in the middle of events too. It is killed with SIGKILL while traffic is being sent,
restarted on the same port while traffic goes on, and then:

* **Stored:** every delivery the simulator saw answered 2xx is an inbox row, exactly once
  (its body and event type; equal bodies are one row, counted in ``deliveries``).
* **Applied once:** a flow that matches every event records one ``flow_runs`` row in the
  transaction that applies the event; every inbox row is DONE and has exactly one run, so
  an event applied twice (or a run without its event) would show.
* **Mirror equal:** deliveries that failed while the service was down are the gap Clockify
  does not retry; an incremental sync (the operator's repair path) closes it. Then the
  mirror equals the simulator for time entries and every reference kind, in both
  directions: none missing, none extra, the same key columns.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from clockify_core.catalog import EVENTS
from clockify_core.simulator.config import DataScale, DeliverySettings, SimulatorConfig
from clockify_core.simulator.state import Simulator
from clockify_core.simulator.testing import ServedSimulator, small_config
from clockify_core.testing.processes import ServiceProcess, free_port
from tests.chaos.support import Db, compare_mirror, sim_state, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(180)]
log = logging.getLogger(__name__)

OPERATOR_KEY = "crash-test-operator-key-0123456789"
TRAFFIC = {"rate": 15, "duration": 8}  # 120 time-entry changes, each a webhook
KILL_AFTER_ACCEPTED = 15  # deliveries answered 2xx before the kill


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return small_config(
        scale=DataScale(workspaces=1, users=4, projects=5, clients=2, tags=4, user_groups=1, time_entries=150,
                        years=0.3, running_timers=1, expenses=0, invoices=0, time_off_requests=0,
                        approval_requests=0, assignments=0),
        delivery=DeliverySettings(concurrency=4, timeout_s=5),
        addon_webhook_cap=50,  # the service declares every webhook (WEBHOOK_CAP=50)
    )



def _service(sim: ServedSimulator, db_url: str, port: int, log_path: Path, bootstrap_days: int) -> ServiceProcess:
    env = {
        "CLOCKIFY_DB_URL": db_url,
        "CLOCKIFY_BASE_URL": f"http://127.0.0.1:{port}",
        "CLOCKIFY_PUBLIC_KEY": sim.public_key_pem,
        "CLOCKIFY_ALLOWED_API_HOSTS": httpx.URL(sim.base_url).netloc.decode(),
        "CLOCKIFY_OPERATOR_API_KEY": OPERATOR_KEY,
        # Every webhook in the manifest: the install needs no registration job.
        "CLOCKIFY_MANIFEST__WEBHOOK_CAP": "50",
        "CLOCKIFY_SYNC__SCHEDULER": "false",  # the repair sync is asked for explicitly
        "CLOCKIFY_SYNC__BOOTSTRAP_DAYS": str(bootstrap_days),
        "CLOCKIFY_WORKER__CONCURRENCY": "2",
        "CLOCKIFY_WORKER__BATCH_SIZE": "5",
        "CLOCKIFY_WORKER__LEASE_SECONDS": "2",  # a dead worker's claims come back soon
        "CLOCKIFY_WORKER__POLL_INTERVAL": "0.1",
        "CLOCKIFY_FLOWS__POLL_INTERVAL": "0.2",
        "CLOCKIFY_FLOWS__LEASE_SECONDS": "3",  # so do its flow runs (120 s by default)
        "CLOCKIFY_MIRROR__REFETCH": "always",
        "LOG_FORMAT": "json",
    }
    return ServiceProcess("clockify_addon.main:app", env=env, port=port, log_path=log_path)


def _traffic_running(control: httpx.Client) -> bool:
    current = control.get("/__sim/traffic").raise_for_status().json()
    return bool(current and current["running"])


def _accepted(state: Simulator, addon_id: str) -> list[Any]:
    return [d for d in state.delivery.query(addon_id=addon_id)
            if any(a.status_code is not None and 200 <= a.status_code < 300 for a in d.attempts)]


def _settled(db: Db) -> bool:
    busy = db.rows(
        "SELECT (SELECT count(*) FROM inbox_events WHERE status IN ('PENDING', 'PROCESSING'))"
        " + (SELECT count(*) FROM flow_runs WHERE status IN ('QUEUED', 'RUNNING'))"
        " + (SELECT count(*) FROM jobs WHERE status IN ('QUEUED', 'RUNNING')) AS busy")
    return int(busy[0].busy) == 0


def test_kill_9_during_traffic_loses_nothing_and_applies_each_event_once(
    simulator_server: ServedSimulator, pg_url: str, tmp_path: Path
) -> None:
    sim, db, control = simulator_server, Db(pg_url), simulator_server.control
    state = sim_state(sim)
    [workspace] = state.workspaces.values()
    oldest = min(workspace.entries.start[r] for r in workspace.entries.by_start.rows)
    bootstrap_days = (datetime.now(UTC) - datetime.fromtimestamp(oldest, UTC)).days + 2  # the whole history
    port = free_port()
    started = time.monotonic()

    first = _service(sim, pg_url, port, tmp_path / "first.log", bootstrap_days).start()
    try:
        first.wait_ready()
        installed = control.post("/__sim/install", json={"addonUrl": first.url}).raise_for_status().json()
        addon_id, workspace_id = installed["addonId"], installed["workspaceId"]
        wait_until(lambda: {r.status for r in db.rows("SELECT status FROM jobs WHERE kind = 'bootstrap'")} == {"DONE"},
                   timeout=60, what="the bootstrap")
        token = control.post("/__sim/user-token", json={"addonId": addon_id}).raise_for_status().json()["token"]
        flow = {"name": "Count every event", "trigger": {"events": sorted(EVENTS)},
                "actions": [{"type": "set_variable", "name": "seen", "value": "{{ $event.id }}"}],
                "max_runs_per_minute": 100_000}
        created = httpx.post(f"{first.url}/api/flows", json=flow, headers={"X-Addon-Token": token}, timeout=10)
        assert created.status_code == 201, created.text

        # Re-fetches take a while, so workers hold claimed events when the process dies.
        control.put("/__sim/faults", json={"latency_ms": 150}).raise_for_status()
        control.post("/__sim/traffic", json={**TRAFFIC, "workspaceId": workspace_id, "wait": False}).raise_for_status()
        wait_until(lambda: len(_accepted(state, addon_id)) >= KILL_AFTER_ACCEPTED, timeout=30,
                   what="the first deliveries", interval=0.05)
        assert _traffic_running(control)  # the kill lands while the simulator is sending
    finally:
        assert first.kill() == -signal.SIGKILL
    killed_at, killed_wall = time.monotonic(), time.time()
    at_kill = {r.status: int(r.n) for r in db.rows("SELECT status, count(*) AS n FROM inbox_events GROUP BY status")}
    assert at_kill.get("PENDING", 0) + at_kill.get("PROCESSING", 0) > 0, at_kill  # work was in flight

    second = _service(sim, pg_url, port, tmp_path / "second.log", bootstrap_days).start()
    try:
        second.wait_ready()
        restarted_after = time.monotonic() - killed_at
        traffic_left = _traffic_running(control)
        wait_until(lambda: not _traffic_running(control), timeout=30, what="the traffic to end")
        control.put("/__sim/faults", json={}).raise_for_status()
        assert control.post("/__sim/deliveries/drain", json={"timeout": 30}).raise_for_status().json()["drained"]
        wait_until(lambda: _settled(db), timeout=60, what="the inbox and flow runs to settle")

        deliveries = state.delivery.query(addon_id=addon_id)
        accepted = _accepted(state, addon_id)
        failed = [d for d in deliveries if d not in accepted]
        # The kill cut requests in flight, and what came while the service was down failed:
        # those are the events only the repair sync can bring.
        assert failed, "no delivery failed: the kill did not land during traffic"
        by_second = sum(1 for d in accepted if d.attempts[-1].at > killed_wall)

        # Stored: every 2xx delivery is one inbox row (equal bodies share it).
        inbox = db.rows("SELECT id, event_type, body, status, attempts, deliveries FROM inbox_events")
        stored = Counter((row.event_type, row.body) for row in inbox)
        for delivery in accepted:
            key = (delivery.event, delivery.body.decode())
            assert stored[key] == 1, (delivery.event, delivery.id, stored[key])
        assert {row.status for row in inbox} == {"DONE"}

        # Applied exactly once: one flow run per inbox event, none without one.
        runs = {r.inbox_event_id: int(r.n) for r in db.rows(
            "SELECT inbox_event_id, count(*) AS n FROM flow_runs GROUP BY inbox_event_id")}
        assert runs == {row.id: 1 for row in inbox}, {k: v for k, v in runs.items() if v != 1}
        reclaimed = sum(1 for row in inbox if row.attempts > 1)

        try:
            compare_mirror(pg_url, sim, workspace_id)
            gap = "none"
        except AssertionError as exc:
            gap = str(exc).splitlines()[0][:200]
        # Repair: an incremental sync brings what the failed deliveries carried.
        with httpx.Client(base_url=second.url, timeout=30, headers={"X-API-Key": OPERATOR_KEY}) as operator:
            asked = operator.post(f"/api/operator/workspaces/{workspace_id}/sync", json={})
            assert asked.status_code == 202, asked.text
            job_id = int(asked.json()["job_id"])
        wait_until(lambda: db.rows("SELECT status FROM jobs WHERE id = :id", id=job_id)[0].status == "DONE",
                   timeout=60, what="the repair sync")
        wait_until(lambda: _settled(db), timeout=30, what="the repair to settle")
        counts = compare_mirror(pg_url, sim, workspace_id)
    finally:
        assert second.stop(), second.tail_log()
    elapsed = time.monotonic() - started
    log.warning(
        "kill -9: %d deliveries, %d answered 2xx (%d of them by the restarted process), %d failed around the kill; "
        "inbox %d rows (at the kill %s), %d claimed again after the kill; restart ready after %.1fs (traffic still "
        "sending: %s); mirror before the repair: %s; after it %s; %.1fs in all",
        len(deliveries), len(accepted), by_second, len(failed), len(inbox), at_kill, reclaimed, restarted_after,
        traffic_left, gap, counts, elapsed)
