"""Scaling out: two instances of clockify_addon behind a load balancer, one PostgreSQL, one Redis.

Both run as real uvicorn subprocesses with every background loop on (inbox workers, job
workers, flow executors, the sync scheduler, retention). A round-robin balancer in front
gets everything Clockify sends: the install, the webhooks (so both instances receive them),
and the operator's "sync now". The simulator delivers some webhooks twice.

What it proves, each by an observable that would show the failure:

* **Each event applied once.** A flow that matches every event records one ``flow_runs``
  row inside the transaction that applies the event: exactly one row per inbox event,
  none without one. Every inbox row is DONE after one attempt, the two instances' counters
  of applied events add up to the number of rows, and every delivery is accounted for
  (stored, or counted on the row it duplicates).
* **One outbound budget.** Both instances call Clockify at once (bootstrap, webhook
  refetches, syncs) with a budget of ``RATE``/s and ``BURST`` shared through Redis. The
  simulator logs every request and enforces the same rate with ``SLACK`` tokens of slack
  for the trip between our limiter and it: zero 429s, and the request log replayed through that
  token bucket never goes negative. Both instances were held back by the limiter, so the
  demand was above the budget (two unshared buckets would have spent twice the rate).
* **One scheduler leader.** Both run the scheduler loop; the lease has one holder, the
  instances' leader gauges add up to 1, each due workspace gets one scheduled sync per
  round; killing the leader moves the lease to the survivor, which schedules the next
  round, again once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from clockify_core.catalog import EVENTS
from clockify_core.db import create_engine
from clockify_core.db.base import utcnow
from clockify_core.flows.models import FlowRun
from clockify_core.jobs.models import Job, JobStatus
from clockify_core.leases import SchedulerLease
from clockify_core.simulator.testing import ServedSimulator
from clockify_core.sync import scheduler
from clockify_core.sync.models import WORKSPACE_KIND, SyncState
from clockify_core.testing.balancer import RoundRobinBalancer
from clockify_core.testing.processes import ServiceProcess, free_port
from clockify_core.webhooks.models import InboxEvent, InboxStatus

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)

RATE, BURST = 5.0, 5
# Tokens of tolerance for the trip from our limiter to the simulator's clock: a request the
# simulator's (GIL-sharing) thread admits late makes the next one look early. Unshared
# buckets overshoot by far more: the bucket replay below reaches about -26 without Redis.
SLACK = 2
OPERATOR_KEY = "scale-test-operator-key-0123456789"
TRAFFIC = {"rate": 10, "duration": 4}  # ~40 time-entry changes, each a webhook
FIRED = ("NEW_PROJECT", "NEW_TAG", "NEW_CLIENT", "NEW_TASK", "TAG_UPDATED", "PROJECT_UPDATED")
DEADLINE = 120.0
UNSERVED = ("getApprovalRequests", "getCategories", "getExpenses", "getHolidays", "getInvoices", "getSharedReportsV1",
            "findPoliciesForWorkspace")

Samples = dict[str, list[tuple[dict[str, str], float]]]


def instance_env(sim: ServedSimulator, pg_url: str, redis_url: str, redis_prefix: str, public_url: str) -> dict[str, str]:
    return {
        "CLOCKIFY_DB_URL": pg_url,
        "CLOCKIFY_BASE_URL": public_url,  # the balancer: what Clockify calls
        "CLOCKIFY_PUBLIC_KEY": sim.public_key_pem,
        "CLOCKIFY_ALLOWED_API_HOSTS": httpx.URL(sim.base_url).netloc.decode(),
        "CLOCKIFY_REDIS_URL": redis_url,
        "CLOCKIFY_REDIS__KEY_PREFIX": redis_prefix,
        "CLOCKIFY_RATE_LIMIT__RATE": str(RATE),
        "CLOCKIFY_RATE_LIMIT__BURST": str(BURST),
        "CLOCKIFY_OPERATOR_API_KEY": OPERATOR_KEY,
        "CLOCKIFY_MIRROR__REFETCH": "always",  # every webhook costs a Clockify call: demand above the budget
        "CLOCKIFY_WORKER__BATCH_SIZE": "3",  # small claims, so both instances' loops interleave
        "CLOCKIFY_WORKER__POLL_INTERVAL": "0.1",
        "CLOCKIFY_FLOWS__POLL_INTERVAL": "0.2",
        "CLOCKIFY_SYNC__TICK_SECONDS": "0.3",
        "CLOCKIFY_SYNC__LEASE_SECONDS": "3",
        "CLOCKIFY_SYNC__BOOTSTRAP_DAYS": "30",
        # Operations the simulator does not serve: its router answers 404 before any rate
        # limit or request log, so skipping them keeps the log equal to every call we make.
        "CLOCKIFY_SYNC__SKIP_OPERATIONS": ",".join(UNSERVED),
        "LOG_FORMAT": "json",
    }


@contextmanager
def cluster(env: dict[str, str], ports: list[int], tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    instances = [
        ServiceProcess("clockify_addon.main:app", env=env, port=port, log_path=tmp_path / f"instance-{n}.log", cwd=tmp_path)
        for n, port in enumerate(ports)
    ]
    try:
        for instance in instances:
            instance.start()
        for instance in instances:
            instance.wait_ready()
        yield instances
    finally:
        for instance in instances:
            instance.stop()


def scrape(instance: ServiceProcess) -> Samples:
    samples: Samples = {}
    text = httpx.get(instance.url + "/metrics", timeout=10).raise_for_status().text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for sample_labels, v in samples.get(name, []) if labels.items() <= sample_labels.items())


async def scalar(engine: AsyncEngine, statement: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(statement)).scalar()


async def rows(engine: AsyncEngine, statement: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(statement)).all())


async def wait_for(what: str, check: Any, timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def settled(engine: AsyncEngine) -> bool:
    """Nothing left to do: no inbox event, job or flow run waiting or running."""
    busy = [
        select(func.count()).select_from(InboxEvent).where(
            InboxEvent.status.in_([InboxStatus.PENDING, InboxStatus.PROCESSING])),
        select(func.count()).select_from(Job).where(Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING])),
        select(func.count()).select_from(FlowRun).where(FlowRun.status.in_(["QUEUED", "RUNNING"])),
    ]
    return [await scalar(engine, statement) for statement in busy] == [0, 0, 0]


def bucket_deficit(times: list[float], rate: float, capacity: float) -> float:
    """Replay request times through a token bucket; the lowest level reached (< 0: over the limit)."""
    tokens, lowest, previous = capacity, capacity, None
    for at in sorted(times):
        if previous is not None:
            tokens = min(capacity, tokens + (at - previous) * rate)
        tokens -= 1
        lowest = min(lowest, tokens)
        previous = at
    return lowest


def busiest_second(times: list[float]) -> int:
    ordered = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


async def scheduled_syncs(engine: AsyncEngine, workspace_id: str) -> list[str]:
    """The statuses of the workspace's sync jobs the scheduler queued."""
    jobs = await rows(engine, select(Job.status, Job.params).where(Job.workspace_id == workspace_id, Job.kind == "sync"))
    return [status for status, params in jobs if params.get("reason") == "schedule"]


async def lease_holder(engine: AsyncEngine) -> str:
    """The process id of the scheduler lease's holder (instance ids are ``host:pid:nonce``)."""
    holder = await scalar(engine, select(SchedulerLease.holder).where(SchedulerLease.name == scheduler.LEASE))
    return str(holder).split(":")[1]


def pid(instance: ServiceProcess) -> int:
    assert instance.proc is not None
    return instance.proc.pid


async def make_due(engine: AsyncEngine, workspace_id: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(SyncState).where(SyncState.workspace_id == workspace_id,
                                                   SyncState.kind == WORKSPACE_KIND)
                           .values(next_run_at=utcnow() - timedelta(seconds=1)))


async def schedule_round(engine: AsyncEngine, workspace_id: str, expected: int) -> None:
    """Make the workspace due and wait until its next scheduled sync ran."""
    await make_due(engine, workspace_id)

    async def ran() -> bool:
        jobs = await scheduled_syncs(engine, workspace_id)
        return len(jobs) >= expected and set(jobs) == {JobStatus.DONE} and await settled(engine)

    await wait_for(f"scheduled sync #{expected}", ran)


async def test_two_instances_apply_each_event_once_share_the_budget_and_one_schedules(
    simulator_server: ServedSimulator, pg_url: str, redis_server_url: str, redis_prefix: str,
    redis_client: aioredis.Redis, tmp_path: Path,
) -> None:
    # (redis_client: deletes this test's keys under redis_prefix afterwards.)
    sim = simulator_server
    control = sim.control
    control.put("/__sim/rate-limit", json={"enabled": True, "rate": RATE, "burst": BURST + SLACK}).raise_for_status()
    control.put("/__sim/delivery", json={"duplicate_rate": 0.3, "concurrency": 4}).raise_for_status()
    ports = [free_port(), free_port()]
    assert ports[0] != ports[1]
    engine = create_engine(pg_url)
    balancer = RoundRobinBalancer([f"http://127.0.0.1:{port}" for port in ports]).start()
    env = instance_env(sim, pg_url, redis_server_url, redis_prefix, balancer.url)
    try:
        with cluster(env, ports, tmp_path) as instances:
            await run_scenario(sim, engine, balancer, instances)
    finally:
        balancer.stop()
        await engine.dispose()


async def run_scenario(sim: ServedSimulator, engine: AsyncEngine, balancer: RoundRobinBalancer,
                       instances: list[ServiceProcess]) -> None:
    control = sim.control
    installed = control.post("/__sim/install", json={"addonUrl": balancer.url}).raise_for_status().json()
    addon_id, workspace_id = installed["addonId"], installed["workspaceId"]
    operator = {"X-API-Key": OPERATOR_KEY}
    async with httpx.AsyncClient(base_url=balancer.url, timeout=30) as lb:
        # Installing queued register_webhooks and bootstrap; either instance runs them.
        await wait_for("bootstrap", lambda: _bootstrapped(engine, workspace_id))
        token = control.post("/__sim/user-token", json={"addonId": addon_id}).raise_for_status().json()["token"]
        flow = {"name": "Count every event", "trigger": {"events": sorted(EVENTS)}, "conditions": None,
                "actions": [{"type": "set_variable", "name": "seen", "value": "{{ $event.id }}"}],
                "max_runs_per_minute": 100_000}
        created = await lb.post("/api/flows", json=flow, headers={"X-Addon-Token": token})
        assert created.status_code == 201, created.text

        # Load: time-entry traffic, a few other events, and a sync asked of the balancer meanwhile.
        control.post("/__sim/traffic", json={**TRAFFIC, "workspaceId": workspace_id}).raise_for_status()
        for event in FIRED:
            control.post("/__sim/fire", json={"event": event, "workspaceId": workspace_id}).raise_for_status()
        synced = await lb.post("/api/operator/sync", json={}, headers=operator)
        assert synced.status_code == 202, synced.text
        await wait_for("traffic", lambda: _traffic_done(control))
        drained = control.post("/__sim/deliveries/drain", json={"timeout": 30}).raise_for_status().json()
        assert drained["drained"], drained
        await wait_for("the inbox, jobs and flow runs to settle", lambda: settled(engine))

        await check_each_event_applied_once(sim, engine, instances, addon_id)
        assert all(balancer.served[backend] > 0 for backend in balancer.backends), balancer.served
        check_shared_budget(sim, instances, addon_id, workspace_id, both=True)

        # The scheduler: both instances tick every 0.3 s; one leads.
        for expected in (1, 2):
            await schedule_round(engine, workspace_id, expected)
        leader = await check_single_leader(engine, instances, workspace_id, scheduled=2)

        # The leader dies without releasing its lease: the survivor takes over once it runs out.
        assert leader.kill() == -signal.SIGKILL
        survivor = next(i for i in instances if i is not leader)
        await schedule_round(engine, workspace_id, 3)
        assert await lease_holder(engine) == f"{pid(survivor)}"
        assert len(await scheduled_syncs(engine, workspace_id)) == 3
        assert total(scrape(survivor), "sync_scheduler_leader") == 1

    check_shared_budget(sim, instances, addon_id, workspace_id, both=False)


async def _bootstrapped(engine: AsyncEngine, workspace_id: str) -> bool:
    done = await rows(engine, select(Job.kind, Job.status).where(Job.workspace_id == workspace_id))
    return {("bootstrap", "DONE"), ("register_webhooks", "DONE")} <= set(done) and await settled(engine)


async def _traffic_done(control: httpx.Client) -> bool:
    current = control.get("/__sim/traffic").raise_for_status().json()
    return current is not None and not current["running"]


async def check_each_event_applied_once(sim: ServedSimulator, engine: AsyncEngine, instances: list[ServiceProcess],
                                        addon_id: str) -> None:
    deliveries = sim.control.get("/__sim/deliveries", params={"addonId": addon_id}).raise_for_status().json()
    sent = deliveries["deliveries"]
    assert sent
    assert {d["status"] for d in sent} == {"delivered"}, {d["status"] for d in sent}
    assert any(d["duplicate"] for d in sent)

    inbox = await rows(engine, select(InboxEvent.id, InboxEvent.status, InboxEvent.attempts, InboxEvent.deliveries))
    assert {(status, attempts) for _, status, attempts, _ in inbox} == {(InboxStatus.DONE, 1)}
    assert sum(n for *_, n in inbox) == len(sent)  # every delivery stored, or counted on the row it repeats
    runs = await rows(engine, select(FlowRun.inbox_event_id, func.count()).group_by(FlowRun.inbox_event_id))
    assert dict(runs) == {event_id: 1 for event_id, *_ in inbox}  # one match per event, none twice
    statuses = await rows(engine, select(FlowRun.status, func.count()).group_by(FlowRun.status))
    assert dict(statuses) == {"SUCCEEDED": len(inbox)}

    metrics = [scrape(instance) for instance in instances]
    received = [total(m, "webhooks_received_total", outcome="accepted") for m in metrics]
    duplicates = [total(m, "webhooks_received_total", outcome="duplicate") for m in metrics]
    applied = [total(m, "inbox_processing_seconds_count") for m in metrics]
    assert all(n > 0 for n in received), received  # the balancer gave both instances webhooks
    assert sum(received) == len(inbox)
    assert sum(received) + sum(duplicates) == len(sent)
    assert all(n > 0 for n in applied), applied  # both instances' workers applied events
    assert sum(applied) == len(inbox)
    log.info("scale-out: %d deliveries (%d duplicates) -> %d inbox events, received %s, applied %s, %d flow runs",
             len(sent), sum(d["duplicate"] for d in sent), len(inbox), received, applied, len(inbox))


async def check_single_leader(engine: AsyncEngine, instances: list[ServiceProcess], workspace_id: str,
                              scheduled: int) -> ServiceProcess:
    jobs = await scheduled_syncs(engine, workspace_id)
    assert len(jobs) == scheduled
    assert set(jobs) == {JobStatus.DONE}
    metrics = [scrape(instance) for instance in instances]
    leading = [total(m, "sync_scheduler_leader") for m in metrics]
    assert sorted(leading) == [0.0, 1.0], leading
    assert sum(total(m, "sync_scheduled_total") for m in metrics) == scheduled
    leader = instances[leading.index(1.0)]
    assert await lease_holder(engine) == f"{pid(leader)}"
    return leader


def check_shared_budget(sim: ServedSimulator, instances: list[ServiceProcess], addon_id: str, workspace_id: str,
                        *, both: bool) -> None:
    answer = sim.control.get("/__sim/requests", params={"addonId": addon_id, "workspaceId": workspace_id})
    requests = answer.raise_for_status().json()["requests"]
    times = [r["at"] for r in requests]
    throttled = sum(r["throttled"] for r in requests)
    span = max(times) - min(times)
    lowest = bucket_deficit(times, RATE, BURST + SLACK)
    log.info("scale-out: %d Clockify requests in %.1fs = %.2f/s (budget %s/s, burst %d); busiest second %d; "
             "429s %d; lowest level of a bucket of %d: %.2f", len(times), span, len(times) / span, RATE, BURST,
             busiest_second(times), throttled, BURST + SLACK, lowest)
    assert throttled == 0
    assert lowest >= 0
    if both:
        metrics = [scrape(instance) for instance in instances]
        calls = [total(m, "api_calls_total") for m in metrics]
        waited = [total(m, "rate_limit_wait_seconds_sum") for m in metrics]
        log.info("scale-out: Clockify calls per instance %s, seconds waiting for the shared budget %s", calls, waited)
        assert sum(calls) == len(requests)  # the log holds every call, and nothing else spent the budget
        assert all(n > 0 for n in calls), calls
        assert all(w > 0 for w in waited), waited  # both were held back: demand was above the budget
