"""Clockify misbehaves for a whole sync: 5xx storms, a 429 storm and dropped connections.

The simulator serves on a loopback port with uvicorn and ``DroppingH11Protocol``, so a
dropped connection is a socket closed without a response, as a real client sees it. The
service runs as a uvicorn subprocess on PostgreSQL with its workers on. From before the
install to the end, every API call of the simulator may be answered 5xx, dropped, slowed
down or refused with 429 (its per-add-on limit set far below the service's own): the
bootstrap queued by the install, the incremental sync queued when the add-on is enabled
again after edits made in Clockify while it was paused (no webhooks then: only the sync can
bring them), and a backfill of the older history all run through it. Guarantees checked: each job ends
``DONE``; afterwards the mirror equals the simulator's data (same ids, none missing and
none extra, same key columns) for time entries and every reference kind.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from clockify_core.simulator.config import DataScale, SimulatorConfig
from clockify_core.simulator.render import iso
from clockify_core.simulator.testing import ServedSimulator, small_config
from tests.chaos.support import Db, compare_mirror, report, service, sim_state, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(240)]

OPERATOR_KEY = "chaos-operator-key-0123456789abcdef"
# 15 % of calls answered 500/502/503, 8 % dropped without an answer, every call slowed down.
FAULTS = {"error_rate": 0.15, "drop_rate": 0.08, "latency_ms": 5, "latency_jitter_ms": 20, "seed": 9}
# A tenth of the service's own budget (50/s): most bursts meet 429 with Retry-After.
RATE_LIMIT = {"rate": 5.0, "burst": 3}


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return small_config(scale=DataScale(workspaces=1, users=6, projects=8, clients=4, tags=6, user_groups=3,
                                        time_entries=1500, years=1.5, running_timers=2),
                        addon_webhook_cap=50)  # the service declares every webhook (WEBHOOK_CAP=50)



def _operator(client: httpx.Client, path: str, body: dict[str, Any] | None = None) -> int:
    r = client.post(path, json=body or {}, headers={"X-API-Key": OPERATOR_KEY})
    assert r.status_code == 202, r.text
    return int(r.json()["job_id"])


def _job(db: Db, job_id: int) -> Any:
    [row] = db.rows("SELECT id, kind, status, attempts, error, progress FROM jobs WHERE id = :id", id=job_id)
    return row


def _finished(db: Db, job_id: int, *, timeout: float) -> Any:
    def done() -> Any:
        row = _job(db, job_id)
        assert row.status not in ("FAILED", "CANCELLED"), (row.kind, row.status, row.error)
        return row if row.status == "DONE" else None

    return wait_until(done, timeout=timeout, what=f"job {job_id} to finish", interval=0.3)


def _edit_in_clockify(sim: ServedSimulator, workspace_id: str) -> None:
    """Changes a person makes in Clockify, through its API: an edit, a delete and a new entry.
    The storm hits the owner's calls too, so they are retried until they get through."""
    info = sim.info()
    [ws] = [w for w in info["workspaces"] if w["id"] == workspace_id]
    state = sim_state(sim).workspace(workspace_id)
    rows = list(state.entries.by_start.rows)
    recent = [state.entries.id_of(r) for r in rows[-40:]]
    with httpx.Client(base_url=sim.base_url + f"/api/v1/workspaces/{workspace_id}", timeout=10, trust_env=False,
                      headers={"X-Api-Key": ws["ownerApiKey"]}) as owner:

        def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
            for _ in range(40):
                try:
                    r = owner.request(method, path, **kwargs)
                except httpx.TransportError:
                    continue
                if r.status_code < 429 or (r.status_code == 404 and method == "DELETE"):
                    return r
                time.sleep(0.2)
            raise AssertionError(f"{method} {path} never got through the storm")

        entry = call("GET", f"/time-entries/{recent[3]}").json()
        call("PUT", f"/time-entries/{recent[3]}", json={
            "start": entry["timeInterval"]["start"], "end": entry["timeInterval"]["end"],
            "projectId": entry["projectId"], "taskId": entry["taskId"], "tagIds": entry["tagIds"],
            "billable": entry["billable"], "description": "edited under fire",
            "customFields": [{"customFieldId": v["customFieldId"], "value": v["value"]}
                             for v in entry["customFieldValues"]],
        }).raise_for_status()
        assert call("DELETE", f"/time-entries/{recent[7]}").status_code in (204, 404)
        now = datetime.now(UTC)
        call("POST", "/time-entries", json={"start": iso(int((now - timedelta(hours=3)).timestamp())),
                                             "end": iso(int((now - timedelta(hours=1)).timestamp())),
                                             "description": "new during the storm"}).raise_for_status()


def test_sync_completes_through_5xx_429_and_dropped_connections(
    simulator_server: ServedSimulator, pg_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    sim, db = simulator_server, Db(pg_url)
    state = sim_state(sim)
    [workspace] = state.workspaces.values()
    starts = [workspace.entries.start[r] for r in workspace.entries.by_start.rows]
    first, last = datetime.fromtimestamp(min(starts), UTC), datetime.fromtimestamp(max(starts), UTC)
    # Bootstrap reaches back to the middle of the history; the backfill fetches the older half.
    middle = first + (last - first) / 2
    bootstrap_days = (datetime.now(UTC) - middle).days
    proc = service(
        sim, pg_url, tmp_path / "service.log",
        CLOCKIFY_SECURITY__OPERATOR_API_KEY=OPERATOR_KEY,
        # Every webhook in the manifest: no registration job, so the storm hits the sync alone.
        CLOCKIFY_MANIFEST__WEBHOOK_CAP="50",
        CLOCKIFY_SYNC__SCHEDULER="false",
        CLOCKIFY_SYNC__BOOTSTRAP_DAYS=str(bootstrap_days),
        CLOCKIFY_SYNC__HISTORY_BACKFILL="false",  # the older half is the operator's backfill here
        CLOCKIFY_SYNC__REPORT_PAGE_SIZE="200",
        CLOCKIFY_SYNC__BATCH_ROWS="250",
        CLOCKIFY_HTTP__BACKOFF_BASE="0.05",
        CLOCKIFY_HTTP__BACKOFF_MAX="0.5",
        CLOCKIFY_HTTP__READ_TIMEOUT="5",
        CLOCKIFY_WORKER__BACKOFF_BASE="0.5",
        CLOCKIFY_WORKER__BACKOFF_MAX="2",
        CLOCKIFY_WORKER__MAX_ATTEMPTS="20",
        CLOCKIFY_WORKER__POLL_INTERVAL="0.1",
    ).start()
    try:
        proc.wait_ready()
        sim.control.put("/__sim/faults", json=FAULTS).raise_for_status()
        sim.control.put("/__sim/rate-limit", json=RATE_LIMIT).raise_for_status()
        started = time.monotonic()
        # The install queues the bootstrap: it runs under the storm from its first request.
        installed = sim.control.post("/__sim/install", json={"addonUrl": proc.url}).raise_for_status().json()
        workspace_id = installed["workspaceId"]
        assert workspace_id == workspace.id
        assert {r.kind for r in db.rows("SELECT kind FROM jobs")} == {"bootstrap"}
        [boot_id] = [r.id for r in db.rows("SELECT id FROM jobs WHERE kind = 'bootstrap'")]
        boot = _finished(db, boot_id, timeout=120)
        after_boot = time.monotonic()

        # Paused, the add-on gets no webhooks: what changes now only a sync can bring in.
        addon_id = installed["addonId"]
        sim.control.post("/__sim/status-change", json={"addonId": addon_id, "status": "INACTIVE"}).raise_for_status()
        _edit_in_clockify(sim, workspace_id)
        sim.control.post("/__sim/status-change", json={"addonId": addon_id, "status": "ACTIVE"}).raise_for_status()
        [sync_id] = [r.id for r in db.rows("SELECT id FROM jobs WHERE kind = 'sync'")]  # queued by the re-activation
        sync = _finished(db, sync_id, timeout=120)
        synced = {r.description for r in db.rows(
            "SELECT description FROM time_entries WHERE workspace_id = :w AND deleted_at IS NULL", w=workspace_id)}
        assert {"edited under fire", "new during the storm"} <= synced

        with httpx.Client(base_url=proc.url, timeout=30) as client:
            # Up to the middle and a few days past it: the windows overlap the bootstrap's.
            backfill = _finished(db, _operator(client, f"/api/operator/workspaces/{workspace_id}/backfill", {
                "since": (first - timedelta(days=1)).date().isoformat(),
                "until": (middle + timedelta(days=3)).date().isoformat(), "window": "month"}), timeout=120)
        elapsed = time.monotonic() - started

        faults = sim.control.get("/__sim/faults").json()["counts"]
        throttled = int(sim.control.get("/__sim/stats").json()["counters"].get("http.429", 0))
        sim.control.put("/__sim/faults", json={}).raise_for_status()
        sim.control.put("/__sim/rate-limit", json={}).raise_for_status()
        # The storm really happened, to every job.
        assert faults['error'] >= 10, (faults, throttled)
        assert faults['drop'] >= 5, (faults, throttled)
        assert throttled >= 10, (faults, throttled)
        assert sum(int(j.progress.get("errors", 0)) for j in (boot, sync, backfill)) > 0
        # Nothing came by webhook: the mirror is the pulls' work alone.
        assert sim.control.get("/__sim/deliveries", params={"addonId": addon_id}).json()["deliveries"] == []

        counts = compare_mirror(pg_url, sim, workspace_id)
        # Primary keys rule out duplicate rows; no gap: every live entry of the simulator is
        # mirrored, the deleted one is gone, the edit and the new entry arrived.
        live = db.rows("SELECT id, description FROM time_entries WHERE workspace_id = :w AND deleted_at IS NULL",
                       w=workspace_id)
        assert {r.id for r in live} == {workspace.entries.id_of(r) for r in workspace.entries.by_start.rows}
        assert {"edited under fire", "new during the storm"} <= {r.description for r in live}
        assert counts["time_entry"] == len(workspace.entries) > 1000
        attempts = {j.kind: j.attempts for j in (boot, sync, backfill)}
        report(request, "clockify storm", (
            f"{faults['error']} answers 5xx, {faults['drop']} connections dropped, {throttled} answered 429 "
            f"of {sum(faults.values())} API calls; bootstrap {after_boot - started:.1f} s (install included), "
            f"bootstrap+sync+backfill {elapsed:.1f} s, job attempts {attempts}; mirror equals the simulator: "
            f"{counts['time_entry']} time entries, " + ", ".join(f"{n} {k}" for k, n in counts.items() if k != "time_entry")
        ))
    finally:
        proc.kill()
