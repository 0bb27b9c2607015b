"""Many workspaces on one service: the in-suite version of ``bench/many_workspaces.py``.

Fifty simulated workspaces of mixed sizes and plans (a third on the Free plan's rolling 30
requests/hour) are installed in one marketplace burst on a real ``clockify_addon``
subprocess on PostgreSQL. Every workspace must bootstrap, take webhook traffic spread over
all of them, and get its scheduled sync once all are due at the same moment; then the
mirror must equal the simulator for every workspace. No Clockify answer is 429, and every
Free workspace's requests follow the add-on's Free budget (set ten times higher in both the
simulator and the add-on, so the test takes minutes, not hours). Correctness only, no
timings: the figures are the benchmark's (docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from clockify_core.db import create_engine, create_session_factory
from clockify_core.db.base import utcnow
from clockify_core.jobs.models import Job, JobStatus
from clockify_core.ratelimit import Limit
from clockify_core.simulator.config import (
    DataScale,
    FleetSettings,
    RateLimitSettings,
    SimulatorConfig,
)
from clockify_core.simulator.testing import ServedSimulator, small_config
from clockify_core.sync.models import WORKSPACE_KIND, SyncState
from clockify_core.testing.processes import ServiceProcess
from clockify_core.webhooks.models import InboxEvent, InboxStatus
from tests.chaos.support import sim_state
from tests.sync.conftest import KEY_COLUMNS, assert_same, expected, mirrored

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]  # deadlines of its own, Free ones generous

WORKSPACES = 50
DEADLINE = 240.0
UNSERVED = ("getApprovalRequests", "getCategories", "getExpenses", "getHolidays", "getInvoices", "getSharedReportsV1",
            "findPoliciesForWorkspace")


# The Free plan's hourly quota in both the simulator and the add-on for this test: ten times
# Clockify's 30, so a Free workspace onboards in a minute or two, yet its bootstrap, history
# backfill, registration and sync (31 to 36 requests here) need more than the add-on's bucket
# holds at once (a tenth), so the refill paces the rest, as with Clockify's 30 an hour.
FREE_PER_HOUR = 300
FREE_DEADLINE = 900.0  # generous: the refill grants one request every 13 s
ARRIVAL_SLACK = 10.0


def fleet_config(free_fraction: float) -> SimulatorConfig:
    # Every 25th workspace (two of fifty) has the full scale below; the rest are small.
    return small_config(
        scale=DataScale(workspaces=WORKSPACES, users=4, projects=5, clients=2, tags=4, user_groups=1,
                        max_tasks_per_project=2, time_entries=1500, years=0.5, running_timers=1, expenses=1,
                        invoices=1, time_off_requests=1, approval_requests=1, assignments=1),
        fleet=FleetSettings(small_min_entries=5, small_max_entries=200, large_fraction=0.04,
                            free_fraction=free_fraction),
        rate_limit=RateLimitSettings(free_per_hour=FREE_PER_HOUR),
    )


@pytest.fixture
def simulator_config(request: pytest.FixtureRequest) -> SimulatorConfig:
    return fleet_config(request.param)


async def wait_for(what: str, check: Callable[[], Awaitable[Any]], engine: AsyncEngine | None = None,
                   timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; jobs: {await job_summary(engine) if engine else ''}")
        await asyncio.sleep(0.3)


async def job_summary(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        found = await conn.execute(select(Job.kind, Job.status, func.count(), func.max(Job.error))
                                   .group_by(Job.kind, Job.status))
        return [tuple(r) for r in found]


async def statuses(engine: AsyncEngine, kind: str) -> dict[str, list[str]]:
    """Per workspace, the statuses of its jobs of ``kind``."""
    async with engine.connect() as conn:
        found = (await conn.execute(select(Job.workspace_id, Job.status, Job.params).where(Job.kind == kind))).all()
    out: dict[str, list[str]] = {}
    for workspace_id, status, params in found:
        if kind != "sync" or params.get("reason") == "schedule":
            out.setdefault(workspace_id, []).append(status)
    return out


async def settled(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        inbox = await conn.scalar(select(func.count()).select_from(InboxEvent).where(
            InboxEvent.status.in_([InboxStatus.PENDING, InboxStatus.PROCESSING])))
        jobs = await conn.scalar(select(func.count()).select_from(Job).where(
            Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING])))
    return inbox == 0 and jobs == 0


def all_done(found: dict[str, list[str]], workspaces: set[str]) -> bool:
    return set(found) == workspaces and all(set(s) == {JobStatus.DONE} for s in found.values())


@pytest.mark.parametrize("simulator_config", [
    pytest.param(0.0, id="paid"),
    pytest.param(0.3, id="mixed-plans"),
], indirect=True)
async def test_fifty_workspaces_bootstrap_take_traffic_sync_on_schedule_and_mirror_exactly(
    simulator_server: ServedSimulator, simulator_config: SimulatorConfig, pg_url: str, tmp_path: Path,
) -> None:
    sim, control = simulator_server, simulator_server.control
    # Many deliveries in flight at once, as Clockify sends to many workspaces.
    control.put("/__sim/delivery", json={"concurrency": 8}).raise_for_status()
    state = sim_state(sim)
    workspaces = set(state.workspaces)
    free = {ws.id for ws in state.workspaces.values() if ws.plan == "free"}
    sizes = sorted(len(ws.entries) for ws in state.workspaces.values())
    assert len(workspaces) == WORKSPACES
    fleet = simulator_config.fleet
    assert fleet is not None
    assert (0 < len(free) < WORKSPACES) if fleet.free_fraction else not free
    assert sizes[-1] > 5 * sizes[len(sizes) // 2]  # most small, a few large

    service = ServiceProcess("clockify_addon.main:app", log_path=tmp_path / "addon.log", cwd=tmp_path, env={
        "CLOCKIFY_DB_URL": pg_url,
        "CLOCKIFY_PUBLIC_KEY": sim.public_key_pem,
        "CLOCKIFY_ALLOWED_API_HOSTS": httpx.URL(sim.base_url).netloc.decode(),
        "CLOCKIFY_WORKER__POLL_INTERVAL": "0.1",
        "CLOCKIFY_WORKER__JOB_CONCURRENCY": "8",
        "CLOCKIFY_SYNC__TICK_SECONDS": "0.3",
        "CLOCKIFY_SYNC__BOOTSTRAP_DAYS": "3650",
        "CLOCKIFY_SYNC__SKIP_OPERATIONS": ",".join(UNSERVED),
        "CLOCKIFY_RATE_LIMIT__FREE_PLAN_PER_HOUR": str(FREE_PER_HOUR),
    })
    service.env["CLOCKIFY_BASE_URL"] = service.url
    engine = create_engine(pg_url)
    try:
        service.start()
        service.wait_ready()
        await run_scenario(sim, engine, service, workspaces, free)
    finally:
        service.stop()
        await engine.dispose()


async def run_scenario(sim: ServedSimulator, engine: AsyncEngine, service: ServiceProcess, workspaces: set[str],
                       free: set[str]) -> None:
    control = sim.control
    deadline = FREE_DEADLINE if free else DEADLINE
    burst = control.post("/__sim/install-all", json={"addonUrl": service.url, "concurrency": 8}, timeout=120)
    assert burst.raise_for_status().json() == {"installed": WORKSPACES, "skipped": 0, "failed": []}

    # Webhook traffic over every workspace while they bootstrap.
    traffic = {"rate": 25, "duration": 4, "allWorkspaces": True, "skew": 1.0}
    control.post("/__sim/traffic", json=traffic).raise_for_status()
    await wait_for("every bootstrap", lambda: _bootstrapped(engine, control, workspaces), engine, deadline)
    await wait_for("the traffic", lambda: _traffic_done(control))
    drained = control.post("/__sim/deliveries/drain", json={"timeout": 60}).raise_for_status().json()
    assert drained["drained"], drained
    await wait_for("the inbox and jobs to settle", lambda: settled(engine), engine, deadline)
    touched = control.get("/__sim/traffic").raise_for_status().json()["workspacesTouched"]
    assert touched > 5  # the traffic was spread, not sent to one workspace

    # Every workspace due at the same moment: each gets its scheduled sync; none is starved.
    async with engine.begin() as conn:
        await conn.execute(update(SyncState).where(SyncState.kind == WORKSPACE_KIND)
                           .values(next_run_at=utcnow() - timedelta(seconds=1)))

    async def synced() -> bool:
        return all_done(await statuses(engine, "sync"), workspaces) and await settled(engine)

    await wait_for("a scheduled sync of every workspace", synced, engine, deadline)

    no_429(control)
    stats = control.get("/__sim/stats").raise_for_status().json()
    assert all(stats["requestsByWorkspace"][ws] <= stats["freeQuota"]["limit"] for ws in free)
    for workspace_id in sorted(free):
        paced_by_the_free_budget(control, workspace_id)

    await check_mirrors(sim, engine, workspaces)


def paced_by_the_free_budget(control: httpx.Client, workspace_id: str) -> None:
    """Every request of a Free workspace went through the add-on's Free bucket, the bootstrap's
    first included: more than the bucket's burst were sent (so the refill paced the rest), and no
    span of the simulator's request log holds more than the burst plus the refill over that span
    (``ARRIVAL_SLACK`` allows for requests sent later than granted; lateness never adds to a count)."""
    limit = Limit.per_hour(FREE_PER_HOUR)
    found = control.get("/__sim/requests", params={"workspaceId": workspace_id}).raise_for_status().json()
    times = sorted(r["at"] for r in found["requests"])
    assert len(times) > limit.burst, (workspace_id, len(times))
    for first, start in enumerate(times):
        for last in range(first + limit.burst, len(times)):
            allowed = limit.burst + limit.rate * (times[last] - start + ARRIVAL_SLACK)
            assert last - first + 1 <= allowed, (workspace_id, last - first + 1, times[last] - start)


def no_429(control: httpx.Client) -> None:
    """Clockify's limits are never hit: no 429, no Free quota exceeded (checked while waiting, to fail early)."""
    stats = control.get("/__sim/stats").raise_for_status().json()
    assert stats["counters"].get("http.429", 0) == 0, stats["throttledByWorkspace"]
    assert stats["freeQuota"]["peak"] <= stats["freeQuota"]["limit"]


async def _bootstrapped(engine: AsyncEngine, control: httpx.Client, workspaces: set[str]) -> bool:
    no_429(control)
    return all_done(await statuses(engine, "bootstrap"), workspaces)


async def _traffic_done(control: httpx.Client) -> bool:
    current = control.get("/__sim/traffic").raise_for_status().json()
    return current is not None and not current["running"]


async def check_mirrors(sim: ServedSimulator, engine: AsyncEngine, workspaces: set[str]) -> None:
    state = sim_state(sim)
    async with create_session_factory(engine)() as session:
        for workspace_id in sorted(workspaces):
            ws = state.workspace(workspace_id)
            for kind in KEY_COLUMNS:
                assert_same(kind, await mirrored(session, workspace_id, kind), expected(ws, kind))
