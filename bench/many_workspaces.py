"""Many workspaces on one machine: install N in a burst, bootstrap all, sync on schedule, take webhooks.

    .venv/bin/python bench/many_workspaces.py                                  # N=1,000; one instance, then two
    .venv/bin/python bench/many_workspaces.py --workspaces 50 --instances 1 --duration 60 --timeout 300
    .venv/bin/python bench/many_workspaces.py --workspaces 10000 --instances 1 --timeout 900   # where it breaks

Loopback only. The simulator runs as its own process (``clockify-sim serve --fleet``): N
workspaces, most small (up to ``--small-max-entries``), every ``1/--large-fraction``-th
one with ``--large-entries``, ``--free-fraction`` of them on the Free plan (30 requests in
any rolling hour, whole workspace; ``--free-per-hour`` sets it for the simulator and the service). The
service (``--service``: ``clockify_addon``, the default, or ``universal_webhook``, each
configured under its own environment prefix) runs as one uvicorn process, then as
two behind the loopback round-robin balancer (``clockify_core/testing/balancer.py``, a
thread of this process) sharing Redis, each time on a fresh PostgreSQL database. A figure
that belongs to a job the service does not run (no sync capability: no bootstrap, no
scheduled sync; no time entries: no history backfill) prints as "n/a (not in this service)".

Per run: ``POST /__sim/install-all`` (the marketplace burst), then webhook traffic over all
workspaces at ``--rate``/s for ``--duration`` s (Zipf-skewed towards a few active ones)
while the service bootstraps them and its scheduler queues incremental syncs every
``--interval-minutes``. The run ends when every bootstrap is DONE and the traffic has been
applied (and at least ``--min-run`` s have passed, for the scheduled syncs), or after
``--timeout`` s. Every ``--progress-every`` s a line shows the jobs by kind and status and the
inbox backlog. Printed:

* install burst time, and the time until every workspace's bootstrap is DONE (or how many
  were DONE at the timeout, and the rate they finished at);
* freshness: for the latest traffic change of each entry, its mirror row's ``written_at``
  minus the change's time, p50/p99/max, by plan and size; changes not in the mirror; read
  when the inbox has settled (a later scheduled sync rewrites the rows it re-reads);
* punctuality of scheduled syncs: the longest gap between a workspace's syncs (bootstrap
  included, and up to the end of the run) minus its interval as the scheduler reads it (the
  installation's ``sync_interval_minutes``; Free: at least ``sync.free_plan_interval_minutes``),
  the workspaces over ``--slack``. Installs store the manifest's default (15 minutes), which
  wins over the deployment's ``sync.interval_minutes``: for another ``--interval-minutes``
  every workspace's admin sets it right after the burst (``/__sim/settings-update``, a
  SETTINGS_UPDATED each). Also the scheduled syncs still queued or running at the end, and
  the history backfills DONE;
* 429 answers, the highest Free-plan count in one rolling hour (limit ``--free-per-hour``,
  30 as on Clockify; raise it on both sides to see Free workspaces onboard within a run);
* webhook ingest latency as the simulator (Clockify) saw it, p50/p99/max, during the run;
* peak RSS (VmHWM) of every process, the most PostgreSQL connections of the database
  at once vs the configured pools, the database size, and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from clockify_core import kit  # noqa: E402
from clockify_core.config import DatabaseConfig, ServiceSettings, SyncConfig  # noqa: E402
from clockify_core.db import create_engine  # noqa: E402
from clockify_core.installations.models import Installation  # noqa: E402
from clockify_core.installations.settings import SYNC_INTERVAL_MINUTES  # noqa: E402
from clockify_core.sync.scheduler import interval_minutes  # noqa: E402
from clockify_core.testing.balancer import RoundRobinBalancer  # noqa: E402
from clockify_core.testing.databases import (  # noqa: E402
    create_migrated_database,
    drop_database,
    test_database_url,
    test_redis_url,
)
from clockify_core.testing.processes import ServiceProcess, free_port  # noqa: E402

# Operations the simulator does not serve (404 before any rate limit): skipped, as in tests/scale.
UNSERVED = ("getApprovalRequests", "getCategories", "getExpenses", "getHolidays", "getInvoices", "getSharedReportsV1",
            "findPoliciesForWorkspace")
LARGE = 10_000  # entries from which a workspace counts as large in the figures
TARGET_P99_MS = 50.0
SERVICES = ("clockify_addon", "universal_webhook")
NOT_HERE = "n/a (not in this service)"


@dataclass(frozen=True)
class Service:
    """What the bench needs to know of the service package under test."""

    name: str
    app: str  # the uvicorn target
    prefix: str  # its settings' first environment prefix (CLOCKIFY_, UNIVERSAL_WEBHOOK_)
    syncs: bool  # bootstrap and scheduled incremental syncs (the sync capability)
    backfills: bool  # history backfill of time entries (sync capability and a time-entry profile)


def load_service(name: str) -> Service:
    """Read the service's prefix, capabilities and profile from its package, as it runs them."""
    if name not in SERVICES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(SERVICES)}")
    app_module = importlib.import_module(f"{name}.app")
    settings_cls = importlib.import_module(f"{name}.settings").Settings
    assert issubclass(settings_cls, ServiceSettings)
    syncs = kit.SYNC in app_module.CAPABILITIES
    profile: kit.ServiceProfile = app_module.PROFILE
    return Service(name=name, app=f"{name}.main:app", prefix=settings_cls.env_prefixes[0], syncs=syncs,
                   backfills=syncs and profile.sync_time_entries)


def status_kb(pid: int, field_name: str) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def spread(values: list[float], unit: str = "s", scale: float = 1.0) -> str:
    if not values:
        return "-"
    return (f"p50 {pct(values, 0.5) * scale:.2f} {unit}, p99 {pct(values, 0.99) * scale:.2f} {unit}, "
            f"max {max(values) * scale:.2f} {unit} (n={len(values)})")


@dataclass
class Samples:
    connections: int = 0
    loads: list[float] = field(default_factory=list)
    bootstrapped: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, DONE)


def start_simulator(port: int, keys: Path, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "clockify_core.simulator", "serve", "--port", str(port), "--fleet",
        "--workspaces", str(args.workspaces), "--users", "50", "--projects", "200",
        "--time-entries", str(args.large_entries), "--years", "1", "--key-dir", str(keys), "--log-level", "warning",
        "--free-fraction", str(args.free_fraction), "--large-fraction", str(args.large_fraction),
        "--small-max-entries", str(args.small_max_entries),
    ]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_simulator(url: str, proc: subprocess.Popen[bytes], timeout: float = 1800) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the simulator exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        with contextlib.suppress(httpx.HTTPError):
            r = httpx.get(url + "/__sim/public-key", timeout=5, trust_env=False)
            if r.status_code == 200:
                return {"publicKey": r.text}
        time.sleep(1)
    raise TimeoutError("the simulator did not start")


def service_env(args: argparse.Namespace, db_url: str, public_url: str, sim_url: str, key: str,
                redis_prefix: str | None) -> dict[str, str]:
    db = DatabaseConfig()
    p = args.service.prefix
    env = {
        f"{p}DB_URL": db_url,
        f"{p}BASE_URL": public_url,
        f"{p}PUBLIC_KEY": key,
        f"{p}ALLOWED_API_HOSTS": httpx.URL(sim_url).netloc.decode(),
        f"{p}SYNC__SKIP_OPERATIONS": ",".join(UNSERVED),
        f"{p}SYNC__INTERVAL_MINUTES": str(args.interval_minutes),
        # The deployment's pools, not the test suite's small ones (testing/processes.py).
        f"{p}DATABASE__POOL_SIZE": str(db.pool_size),
        f"{p}DATABASE__MAX_OVERFLOW": str(db.max_overflow),
        f"{p}RATE_LIMIT__FREE_PLAN_PER_HOUR": str(args.free_per_hour),
        "LOG_LEVEL": "WARNING",
    }
    if redis_prefix is not None:
        env |= {f"{p}REDIS_URL": test_redis_url(), f"{p}REDIS__KEY_PREFIX": redis_prefix}
    for item in args.env:
        key_, _, value = item.partition("=")
        env[key_] = value
    return env


PROGRESS_SQL = """
SELECT kind || CASE WHEN kind = 'sync' THEN ':' || coalesce(params->>'reason', '') ELSE '' END, status, count(*)
FROM jobs WHERE kind IN ('bootstrap', 'sync', 'backfill') AND status IN ('QUEUED', 'RUNNING', 'DONE')
GROUP BY 1, 2
"""


async def progress_line(engine: AsyncEngine, elapsed: float) -> str:
    """Jobs by kind (syncs by reason) as queued/running/DONE, and the inbox backlog: where a run's time goes."""
    async with engine.connect() as conn:
        counts = {(kind, status): int(c) for kind, status, c in await conn.execute(text(PROGRESS_SQL))}
        inbox = int(await conn.scalar(text(
            "SELECT count(*) FROM inbox_events WHERE status IN ('PENDING', 'PROCESSING')")) or 0)
    kinds = sorted({kind for kind, _ in counts})
    jobs = "; ".join(f"{k} {counts.get((k, 'QUEUED'), 0)}/{counts.get((k, 'RUNNING'), 0)}/{counts.get((k, 'DONE'), 0)}"
                     for k in kinds)
    return f"  [{elapsed:4.0f} s] jobs queued/running/DONE: {jobs or 'none'}; inbox backlog {inbox}; load {loadavg():.2f}"


async def sample(engine: AsyncEngine, pids: list[int], started: float, samples: Samples, stop: asyncio.Event,
                 every: float) -> None:
    printed = time.monotonic()
    while not stop.is_set():
        if every and time.monotonic() - printed >= every:
            printed = time.monotonic()
            with contextlib.suppress(Exception):
                print(await progress_line(engine, printed - started), flush=True)
        with contextlib.suppress(Exception):
            async with engine.connect() as conn:
                used = int(await conn.scalar(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )) or 0)
                done = int(await conn.scalar(text("SELECT count(*) FROM jobs WHERE kind = 'bootstrap' AND status = 'DONE'"))
                           or 0)
            samples.connections = max(samples.connections, used)
            samples.bootstrapped.append((time.monotonic() - started, done))
        samples.loads.append(loadavg())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 2.0)


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return await conn.scalar(text(sql), params)


async def wait_until(what: str, check: Any, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(2)
    print(f"  (gave up waiting for {what} at the timeout)", flush=True)
    return False


async def scenario(args: argparse.Namespace, instances: int, sim_url: str, public_key: str, sim_pid: int) -> dict[str, Any]:
    db_url = await create_migrated_database(test_database_url(), f"bench_many_{uuid.uuid4().hex[:8]}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-many-"))
    ports = [free_port() for _ in range(instances)]
    balancer = RoundRobinBalancer([f"http://127.0.0.1:{p}" for p in ports]).start() if instances > 1 else None
    public = balancer.url if balancer else f"http://127.0.0.1:{ports[0]}"
    prefix = f"bench-many-{uuid.uuid4().hex[:8]}:" if instances > 1 else None
    env = service_env(args, db_url, public, sim_url, public_key, prefix)
    services = [ServiceProcess(args.service.app, env=env, port=port, log_path=tmp / f"instance-{n}.log",
                               cwd=tmp) for n, port in enumerate(ports)]
    engine = create_engine(db_url)
    try:
        for service in services:
            service.start()
        for service in services:
            service.wait_ready(timeout=120)
        pids = [s.proc.pid for s in services if s.proc is not None]
        return await measure(args, engine, services, pids, sim_url, sim_pid, tmp)
    finally:
        for service in services:
            service.stop()
        if balancer is not None:
            balancer.stop()
        await engine.dispose()
        if not args.keep_db:
            await drop_database(db_url)


async def measure(args: argparse.Namespace, engine: AsyncEngine, services: list[ServiceProcess], pids: list[int],
                  sim_url: str, sim_pid: int, tmp: Path) -> dict[str, Any]:
    n: int = args.workspaces
    samples, stop = Samples(), asyncio.Event()
    started = time.monotonic()
    sampler = asyncio.create_task(sample(engine, pids, started, samples, stop, args.progress_every))
    deadline = started + args.timeout
    out: dict[str, Any] = {"service": args.service.name, "instances": len(services), "workspaces": n, "logs": str(tmp)}
    async with httpx.AsyncClient(base_url=sim_url, timeout=3600, trust_env=False) as sim:
        addon_url = services[0].env[f"{args.service.prefix}BASE_URL"]
        burst = (await sim.post("/__sim/install-all", json={"addonUrl": addon_url,
                                                              "concurrency": args.install_concurrency})).json()
        out["install_s"] = time.monotonic() - started
        out["install_failed"] = len(burst["failed"])
        print(f"  installed {burst['installed']} in {out['install_s']:.1f} s ({len(burst['failed'])} failed); "
              f"load {loadavg():.2f}", flush=True)
        if args.service.syncs and args.interval_minutes != SYNC_INTERVAL_MINUTES.default:
            await set_interval(sim, args.interval_minutes, args.install_concurrency)
        traffic = {"rate": args.rate, "duration": args.duration, "allWorkspaces": True, "skew": args.skew}
        (await sim.post("/__sim/traffic", json=traffic)).raise_for_status()

        async def all_bootstrapped() -> bool:
            done = await scalar(engine, "SELECT count(*) FROM jobs WHERE kind = 'bootstrap' AND status = 'DONE'")
            return int(done or 0) >= n

        async def traffic_done() -> bool:
            current = (await sim.get("/__sim/traffic")).json()
            return current is not None and not current["running"]

        async def settled() -> bool:
            pending = await scalar(engine, "SELECT count(*) FROM inbox_events WHERE status IN ('PENDING', 'PROCESSING')")
            return int(pending or 0) == 0

        if not args.service.syncs:
            print(f"  every bootstrap DONE: {NOT_HERE}", flush=True)
        elif await wait_until("every bootstrap", all_bootstrapped, deadline):
            out["bootstrap_all_s"] = time.monotonic() - started
            print(f"  every bootstrap DONE after {out['bootstrap_all_s']:.1f} s; load {loadavg():.2f}", flush=True)
        await wait_until("the traffic", traffic_done, deadline)
        await sim.post("/__sim/deliveries/drain", json={"timeout": max(5.0, deadline - time.monotonic())})
        await wait_until("the inbox", settled, deadline)
        # Freshness is read now: a scheduled sync that re-reads a changed entry later rewrites its row
        # (written_at) though the webhook had already brought the change.
        changes = (await sim.get("/__sim/traffic/changes")).json()["changes"]
        mirror = await mirror_rows(engine, {c["entryId"] for c in changes})
        out["freshness_read_s"] = time.monotonic() - started
        if args.service.syncs and time.monotonic() < min(deadline, started + args.min_run):
            # Scheduled syncs fall due an interval after each bootstrap: give them time to run.
            print(f"  settled after {time.monotonic() - started:.0f} s; running on to {min(args.min_run, args.timeout):.0f} s "
                  "for the scheduled syncs", flush=True)
            await asyncio.sleep(min(deadline, started + args.min_run) - time.monotonic())
        out["elapsed_s"] = time.monotonic() - started
        stop.set()
        await sampler
        # Peaks before the simulator renders the logs below (their JSON would count as its peak).
        out["rss_mb"] = {f"addon-{i}": round(status_kb(pid, "VmHWM")) for i, pid in enumerate(pids)}
        out["rss_mb"]["simulator"] = round(status_kb(sim_pid, "VmHWM"))
        stats = (await sim.get("/__sim/stats")).json()
        deliveries = (await sim.get("/__sim/deliveries")).json()["deliveries"]
    out |= await figures(args, engine, stats, changes, mirror, deliveries, samples)
    return out


async def set_interval(sim: httpx.AsyncClient, minutes: int, concurrency: int) -> None:
    """Every workspace's admin sets ``sync_interval_minutes`` (SETTINGS_UPDATED), as the burst left it at the
    manifest's default: the deployment's ``sync.interval_minutes`` only counts for an installation without it."""
    t0 = time.monotonic()
    installations = (await sim.get("/__sim/installations")).json()
    gate = asyncio.Semaphore(concurrency)

    async def one(addon_id: str) -> None:
        async with gate:
            change = [{"id": SYNC_INTERVAL_MINUTES.id, "value": minutes}]
            (await sim.post("/__sim/settings-update", json={"addonId": addon_id, "settings": change})).raise_for_status()

    await asyncio.gather(*(one(i["addonId"]) for i in installations))
    print(f"  {SYNC_INTERVAL_MINUTES.id} set to {minutes} on {len(installations)} installations in "
          f"{time.monotonic() - t0:.1f} s (SETTINGS_UPDATED); load {loadavg():.2f}", flush=True)


async def mirror_rows(engine: AsyncEngine, entry_ids: set[str]) -> dict[str, tuple[datetime, datetime | None]]:
    """``written_at`` and ``deleted_at`` of the mirror rows of ``entry_ids``."""
    mirror: dict[str, tuple[datetime, datetime | None]] = {}
    ids = sorted(entry_ids)
    async with engine.connect() as conn:
        for i in range(0, len(ids), 5000):
            rows = await conn.execute(text("SELECT id, written_at, deleted_at FROM time_entries WHERE id = ANY(:ids)"),
                                      {"ids": ids[i:i + 5000]})
            mirror.update({r[0]: (r[1], r[2]) for r in rows})
    return mirror


async def figures(args: argparse.Namespace, engine: AsyncEngine, stats: dict[str, Any], changes: list[dict[str, Any]],
                  mirror: dict[str, tuple[datetime, datetime | None]], deliveries: list[dict[str, Any]],
                  samples: Samples) -> dict[str, Any]:
    plans: dict[str, str] = stats["plans"]
    size = {ws: "large" if e["live"] >= LARGE else "small" for ws, e in stats["entries"].items()}
    out: dict[str, Any] = {}
    async with engine.connect() as conn:
        jobs = (await conn.execute(text(
            "SELECT workspace_id, kind, status, params, finished_at FROM jobs WHERE kind IN ('bootstrap', 'sync')"
        ))).all()
        backfills = {str(status): int(c) for status, c in await conn.execute(text(
            "SELECT status, count(*) FROM jobs WHERE kind = 'backfill' GROUP BY status"))}
        registrations = (await conn.execute(text(
            "SELECT workspace_id, kind, status FROM jobs WHERE kind = 'register_webhooks'"))).all()
        now: datetime = await conn.scalar(text("SELECT now()"))
        # Each workspace's interval as the scheduler computes it (its setting, the Free plan's floor).
        sync = SyncConfig(interval_minutes=args.interval_minutes)
        intervals = {ws: interval_minutes(sync, Installation(settings=settings, subscription_plan=plan)) * 60
                     for ws, settings, plan in await conn.execute(text(
                         "SELECT workspace_id, settings, subscription_plan FROM installations"))}
        out["db_mb"] = round(int(await conn.scalar(text("SELECT pg_database_size(current_database())")) or 0) / 2**20)
    # Freshness: the latest change of each entry against its mirror row when the inbox settled.
    latest: dict[str, dict[str, Any]] = {}
    for change in changes:
        latest[change["entryId"]] = change
    lags: dict[str, list[float]] = defaultdict(list)
    missing: dict[str, int] = defaultdict(int)
    for entry_id, change in latest.items():
        group = f"{plans.get(change['workspaceId'], '?')}/{size.get(change['workspaceId'], '?')}"
        row = mirror.get(entry_id)
        lag = None if row is None else row[0].timestamp() - change["at"]
        if change["kind"] == "delete" and (row is None or row[1] is not None):
            if lag is not None and lag > -1:
                lags[group].append(max(lag, 0.0))
            continue
        if lag is None or lag < -1:  # (written_at has microseconds; the change's clock is the same host's)
            missing[group] += 1
        else:
            lags[group].append(max(lag, 0.0))
    out["freshness"] = {g: {"p50": pct(v, 0.5), "p99": pct(v, 0.99), "max": max(v), "n": len(v)}
                        for g, v in sorted(lags.items())}
    out["not_in_mirror"] = dict(missing)
    out["changes"] = len(latest)

    # Punctuality: the longest gap between a workspace's syncs, the open one up to now included.
    finished: dict[str, list[datetime]] = defaultdict(list)
    bootstrapped: set[str] = set()
    scheduled = 0
    scheduled_open: dict[str, int] = defaultdict(int)  # status -> scheduled syncs not finished at the end
    for ws, kind, status, params, at in jobs:
        if kind == "sync" and (params or {}).get("reason") == "schedule" and status in ("QUEUED", "RUNNING"):
            scheduled_open[status] += 1
        if status != "DONE" or at is None:
            continue
        if kind == "bootstrap":
            bootstrapped.add(ws)
            finished[ws].append(at)
        elif (params or {}).get("reason") == "schedule":
            scheduled += 1
            finished[ws].append(at)
    worst, late = 0.0, 0
    by_plan_worst: dict[str, float] = defaultdict(float)
    for ws, times in finished.items():
        interval = intervals.get(ws) or args.interval_minutes * 60
        marks = [*sorted(times), now]
        gap = max((b - a).total_seconds() for a, b in itertools.pairwise(marks))
        delay = gap - interval
        worst = max(worst, delay)
        by_plan_worst[plans.get(ws, "?")] = max(by_plan_worst[plans.get(ws, "?")], delay)
        late += delay > args.slack
    out["bootstrapped"] = len(bootstrapped)
    out["registered"] = sum(1 for _, kind, status, *_ in registrations if status == "DONE")
    out["scheduled_syncs"] = scheduled
    out["scheduled_open"] = dict(scheduled_open)
    out["backfills"] = backfills
    out["worst_delay_s"] = worst
    out["late_workspaces"] = late
    out["worst_delay_by_plan"] = dict(by_plan_worst)

    out["http_429"] = stats["counters"].get("http.429", 0)
    out["free_quota_429"] = stats["counters"].get("free_quota.429", 0)
    out["free_peak"] = stats["freeQuota"]["peak"]
    out["free_limit"] = stats["freeQuota"]["limit"]
    elapsed = [a["elapsedMs"] for d in deliveries for a in d["attempts"][:1] if a["elapsedMs"] is not None]
    failed = sum(1 for d in deliveries if d["status"] != "delivered")
    out["ingest_ms"] = {"p50": pct(elapsed, 0.5), "p99": pct(elapsed, 0.99), "max": max(elapsed, default=0.0),
                        "n": len(elapsed), "not_delivered": failed}
    out["pg_connections_peak"] = samples.connections
    db = DatabaseConfig()
    out["pg_connections_bound"] = args.instances_now * (db.pool_size + db.max_overflow)
    out["load"] = {"min": min(samples.loads, default=0.0), "mean": sum(samples.loads) / max(1, len(samples.loads)),
                   "max": max(samples.loads, default=0.0)}
    if samples.bootstrapped:
        span, done = samples.bootstrapped[-1]
        out["bootstrap_rate_per_min"] = done / span * 60 if span else 0.0
    return out


def report(result: dict[str, Any]) -> None:
    n = result["workspaces"]
    print()
    service = result["service_spec"]
    print(f"== {service.name}, {result['instances']} instance(s), {n:,} workspaces (logs in {result['logs']})")
    print(f"install burst            {result['install_s']:.1f} s ({result['install_failed']} failed)")
    if not service.syncs:
        print(f"every bootstrap DONE     {NOT_HERE}")
    elif "bootstrap_all_s" in result:
        print(f"every bootstrap DONE     {result['bootstrap_all_s']:.1f} s after the burst began")
    else:
        print(f"every bootstrap DONE     NOT within the run: {result['bootstrapped']:,} of {n:,} "
              f"({result.get('bootstrap_rate_per_min', 0):.1f}/min)")
    print(f"webhook registrations    {result['registered']:,} of {n:,} DONE "
          f"({result['registered'] / result['elapsed_s'] * 60:.1f}/min over the run)")
    print(f"run length               {result['elapsed_s']:.0f} s; load average min/mean/max "
          f"{result['load']['min']:.2f}/{result['load']['mean']:.2f}/{result['load']['max']:.2f} on {os.cpu_count()} cores")
    print(f"freshness (change -> mirror row, read {result['freshness_read_s']:.0f} s into the run), "
          f"{result['changes']:,} entries changed:")
    for group, f in result["freshness"].items():
        print(f"  {group:12s}           p50 {f['p50']:.2f} s, p99 {f['p99']:.2f} s, max {f['max']:.2f} s (n={f['n']})")
    print(f"  not in the mirror when settled: {result['not_in_mirror'] or 0}")
    if not service.syncs:
        print(f"scheduled syncs          {NOT_HERE}")
    else:
        open_ = result["scheduled_open"]
        print(f"scheduled syncs          {result['scheduled_syncs']:,} DONE ({open_.get('QUEUED', 0)} queued, "
              f"{open_.get('RUNNING', 0)} running at the end); worst delay past the interval "
              f"{result['worst_delay_s']:.0f} s (by plan {({k: round(v) for k, v in result['worst_delay_by_plan'].items()})}); "
              f"{result['late_workspaces']} workspaces over the slack")
    if not service.backfills:
        print(f"history backfills        {NOT_HERE}")
    else:
        backfills = result["backfills"]
        others = ", ".join(f"{v} {k}" for k, v in sorted(backfills.items()) if k != "DONE") or "none other"
        print(f"history backfills        {backfills.get('DONE', 0):,} DONE of {sum(backfills.values()):,} ({others})")
    print(f"429 answers              {result['http_429']} (Free quota refusals {result['free_quota_429']}); "
          f"Free peak {result['free_peak']} in one hour (limit {result['free_limit']})")
    ingest = result["ingest_ms"]
    print(f"webhook ingest           p50 {ingest['p50']:.1f} ms, p99 {ingest['p99']:.1f} ms, max {ingest['max']:.0f} ms "
          f"(n={ingest['n']}, {ingest['not_delivered']} not delivered; target p99 <= {TARGET_P99_MS:.0f} ms)")
    print(f"peak RSS                 {result['rss_mb']} MB")
    print(f"PostgreSQL connections   peak {result['pg_connections_peak']} (pools allow {result['pg_connections_bound']})")
    print(f"database size            {result['db_mb']} MB")
    print("json " + json.dumps({k: v for k, v in result.items() if k not in ("logs", "service_spec")}, default=str))


async def run(args: argparse.Namespace) -> None:
    keys = Path(tempfile.mkdtemp(prefix="bench-many-keys-"))
    port = free_port()
    sim_url = f"http://127.0.0.1:{port}"
    print(f"service {args.service.name}; generating {args.workspaces:,} workspaces in the simulator ... load {loadavg():.2f}", flush=True)
    t0 = time.monotonic()
    proc = start_simulator(port, keys, args)
    try:
        key = wait_for_simulator(sim_url, proc)["publicKey"]
        print(f"simulator ready in {time.monotonic() - t0:.0f} s, RSS {status_kb(proc.pid, 'VmRSS'):.0f} MB", flush=True)
        async with httpx.AsyncClient(base_url=sim_url, timeout=3600, trust_env=False) as control:
            (await control.put("/__sim/delivery", json={"concurrency": args.delivery_concurrency})).raise_for_status()
            (await control.put("/__sim/rate-limit", json={"free_per_hour": args.free_per_hour})).raise_for_status()
        for i, instances in enumerate(args.instances):
            if i:
                async with httpx.AsyncClient(base_url=sim_url, timeout=3600, trust_env=False) as control:
                    (await control.post("/__sim/reset")).raise_for_status()
            args.instances_now = instances
            print(f"-- {instances} instance(s)", flush=True)
            report(await scenario(args, instances, sim_url, key, proc.pid) | {"service_spec": args.service})
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", type=load_service, default="clockify_addon", metavar="|".join(SERVICES),
                        help="the service package under test (default clockify_addon)")
    parser.add_argument("--workspaces", type=int, default=1000)
    parser.add_argument("--instances", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2],
                        help="comma-separated instance counts to run one after the other (default 1,2)")
    parser.add_argument("--rate", type=float, default=200.0, help="aggregate webhook-causing changes per second")
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of traffic")
    parser.add_argument("--skew", type=float, default=1.0, help="Zipf exponent of the traffic over workspaces")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds a run may last at most")
    parser.add_argument("--min-run", type=float, default=0.0,
                        help="seconds the run lasts at least (at most --timeout) once settled, so scheduled syncs can run")
    parser.add_argument("--progress-every", type=float, default=60.0,
                        help="print jobs by kind/status and the inbox backlog every so many seconds (0: never)")
    parser.add_argument("--interval-minutes", type=int, default=SyncConfig().interval_minutes,
                        help="incremental sync interval (default: the deployment default)")
    parser.add_argument("--slack", type=float, default=60.0, help="seconds a scheduled sync may be late")
    parser.add_argument("--free-fraction", type=float, default=0.3)
    parser.add_argument("--free-per-hour", type=int, default=30,
                        help="the Free plan's hourly quota, in the simulator and the service alike (Clockify: 30)")
    parser.add_argument("--large-fraction", type=float, default=0.01)
    parser.add_argument("--large-entries", type=int, default=100_000)
    parser.add_argument("--small-max-entries", type=int, default=1000)
    parser.add_argument("--install-concurrency", type=int, default=16)
    parser.add_argument("--delivery-concurrency", type=int, default=32)
    parser.add_argument("--env", action="append", default=[], help="extra service setting NAME=VALUE (repeatable)")
    parser.add_argument("--keep-db", action="store_true")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
