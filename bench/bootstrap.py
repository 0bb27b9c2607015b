"""Bootstrap of a 1,000,000-entry workspace into PostgreSQL: entities/s against its two ceilings.

    .venv/bin/python bench/bootstrap.py                       # 1,000,000 entries, per-user pages, yearly windows
    .venv/bin/python bench/bootstrap.py --entries 100000      # a quicker run
    .venv/bin/python bench/bootstrap.py --source report --window month --merge-only --profile /tmp/boot.txt
    .venv/bin/python bench/bootstrap.py --simulator both   # rendering, then pre-rendered pages (--prerender)

The simulator runs as its own process (``clockify-sim serve``, loopback, Clockify's
50 requests/s per add-on and workspace switched on), so its rendering does not share
this process's interpreter. ``clockify_addon`` runs in this process: uvicorn serves it
for the INSTALLED call, then its ``bootstrap`` job runs through the normal job runner
(``run_one``) against a fresh PostgreSQL database on ``TEST_DATABASE_URL``.

Printed:

* entities/s: every row bootstrap wrote (reference data and time entries) over the
  job's wall time, and time entries alone over the time-entry phase;
* rows written by direct COPY and through the staging merge (the job's ``direct_rows``
  and ``merged_rows``);
* the rate-limit bound: requests/s x the page size the time entries were read with;
* the COPY baseline, measured afterwards in the same run on the same rows: the
  ``time_entries`` rows are read back and copied (binary COPY, the same driver call
  the bulk writer makes) into an empty table with the same columns and indexes, in
  COPY statements of ``--batch`` rows (the bootstrap's batch), each its own transaction,
  one connection; with the CPU per row of its backend and of this process, and the load
  average around it (it runs minutes after the bootstrap: a ratio of the two rates is
  only as steady as the machine's load);
* 429 answers from the simulator, requests made, and this process's peak RSS during
  the bootstrap (``VmHWM``, reset just before it starts);
* CPU per time entry of the add-on (this process), the simulator and PostgreSQL: every
  postgres process alive at the end (one that exited meanwhile is not counted; other
  databases' work included), and the backends connected to the bench's database alone;
* the garbage collector's collections during the bootstrap and the time they took.

``--simulator prerendered`` starts the simulator with ``--prerender``: pages are joined
from each entry's JSON rendered at start, so the simulator's CPU per entry is close to
zero, as Clockify's is to the add-on's machine; ``both`` runs the two modes one after the
other (each with its own simulator and database) and prints both.

Targets: time entries/s >= 90 % of min(rate bound, COPY baseline) with pre-rendered
pages, add-on CPU <= 20 us per time entry, no 429, RSS < 300 MB.
``--profile FILE`` writes a pyinstrument profile of the bootstrap.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import uvicorn  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from clockify_addon.app import create_app  # noqa: E402
from clockify_addon.settings import Settings  # noqa: E402
from clockify_core.jobs.models import Job  # noqa: E402
from clockify_core.jobs.worker import run_one  # noqa: E402
from clockify_core.mirror.models import TimeEntry  # noqa: E402
from clockify_core.runtime import Runtime  # noqa: E402
from clockify_core.testing.databases import (  # noqa: E402
    create_migrated_database,
    drop_database,
    test_database_url,
)
from clockify_core.testing.processes import free_port  # noqa: E402

TARGET_RATIO, TARGET_RSS_MB, TARGET_ADDON_US = 0.9, 300.0, 20.0


def rss_mb() -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """user+system CPU seconds of one process (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def postgres_cpu_seconds() -> dict[int, float]:
    """CPU seconds of every postgres process on this host (other databases' work included), by pid."""
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    found[int(entry.name)] = cpu_seconds(int(entry.name))
    return found


def postgres_cpu_since(before: dict[int, float]) -> float:
    """CPU the postgres processes alive now spent since ``before`` (a backend that exited in
    between, such as another test's, would otherwise subtract its whole life)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in postgres_cpu_seconds().items())


class GcTimer:
    """Collections of the cyclic garbage collector and the time they took, by generation (gc.callbacks)."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.count[info["generation"]] += 1
            self.seconds[info["generation"]] += time.perf_counter() - self._started

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


async def database_backends_cpu_since(runtime: Runtime, before: dict[int, float]) -> float:
    """CPU the backends connected to the bench's database now spent since ``before``: PostgreSQL's
    work for this bootstrap without other databases' (other engineers' tests and benches)."""
    async with runtime.sessions() as session:
        pids = list((await session.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"))).scalars())
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid) - before.get(pid, 0.0)
    return total


def reset_peak_rss() -> None:
    # "5" resets VmHWM to the current RSS (proc(5), /proc/pid/clear_refs).
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def start_simulator(port: int, keys: Path, args: argparse.Namespace, prerendered: bool) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "clockify_core.simulator", "serve", "--port", str(port), "--workspaces", "1",
        "--users", str(args.users), "--projects", str(args.projects), "--time-entries", str(args.entries),
        "--years", str(args.years), "--key-dir", str(keys), "--log-level", "warning",
        *(["--prerender"] if prerendered else []),
    ]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(url: str, proc: subprocess.Popen[bytes], timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the simulator exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        with contextlib.suppress(httpx.HTTPError):
            r = httpx.get(url + "/__sim/info", timeout=5, trust_env=False)
            if r.status_code == 200:
                info: dict[str, Any] = r.json()
                return info
        time.sleep(0.5)
    raise TimeoutError("the simulator did not start")


async def copy_baseline(db_url: str, workspace_id: str, batch: int) -> tuple[int, float, float, float]:
    """A plain binary COPY of the mirrored time entries into an empty, equally indexed table, in
    ``batch``-row COPY statements (each its own transaction, as the bootstrap's batches are):
    rows copied, seconds spent in the COPY calls, and the CPU seconds the copying backend and
    this process spent in them."""
    dsn = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_copy_baseline")
        await conn.execute("CREATE TABLE bench_copy_baseline (LIKE time_entries INCLUDING ALL)")
        columns = [r["attname"] for r in await conn.fetch(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'time_entries'::regclass AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum")]
        backend = conn.get_server_pid()
        copied, spent, backend_cpu, client_cpu = 0, 0.0, 0.0, 0.0

        async def copy(chunk: list[tuple[Any, ...]]) -> None:
            nonlocal copied, spent, backend_cpu, client_cpu
            started, pg0, own0 = time.perf_counter(), cpu_seconds(backend), time.process_time()
            await conn.copy_records_to_table("bench_copy_baseline", records=chunk, columns=columns)
            spent += time.perf_counter() - started
            backend_cpu += cpu_seconds(backend) - pg0
            client_cpu += time.process_time() - own0
            copied += len(chunk)

        reader = await asyncpg.connect(dsn)
        try:
            async with reader.transaction():
                cursor = reader.cursor("SELECT * FROM time_entries WHERE workspace_id = $1", workspace_id, prefetch=batch)
                chunk: list[tuple[Any, ...]] = []
                async for record in cursor:
                    chunk.append(tuple(record))
                    if len(chunk) >= batch:
                        await copy(chunk)
                        chunk = []
                if chunk:
                    await copy(chunk)
        finally:
            await reader.close()
        await conn.execute("DROP TABLE bench_copy_baseline")
        return copied, spent, backend_cpu, client_cpu
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> None:
    modes = ("rendering", "prerendered") if args.simulator == "both" else (args.simulator,)
    results = {mode: await run_mode(args, mode == "prerendered") for mode in modes}
    print()
    for mode, result in results.items():
        print(f"{mode + ' simulator':22s} {result['te_rate']:,.0f} time entries/s = {result['ratio']:.0%} of COPY "
              f"({result['copy_rate']:,.0f} rows/s); CPU per entry add-on {result['addon_us']:.1f} us, "
              f"simulator {result['sim_us']:.1f} us, postgres {result['pg_us']:.1f} us (this database's backends "
              f"{result['own_pg_us']:.1f} us, COPY baseline's {result['copy_pg_us']:.1f} us); "
              f"peak RSS {result['rss']:.0f} MB")
    addon_us = min(result["addon_us"] for result in results.values())
    print(f"target add-on CPU <= {TARGET_ADDON_US:.0f} us/time entry: "
          f"{'met' if addon_us <= TARGET_ADDON_US else 'missed'} ({addon_us:.1f} us)")
    peak = max(result["rss"] for result in results.values())
    print(f"target peak RSS < {TARGET_RSS_MB:.0f} MB: {'met' if peak < TARGET_RSS_MB else 'missed'} ({peak:.0f} MB; "
          "with --simulator both the second run starts from the first one's heap)")
    refused = sum(result["http_429"] for result in results.values())
    print(f"target no 429 answers: {'met' if refused == 0 else 'missed'} ({refused:.0f})")
    if "prerendered" in results:
        ratio = results["prerendered"]["ratio"]
        print(f"target >= {TARGET_RATIO:.0%} of COPY with pre-rendered pages: "
              f"{'met' if ratio >= TARGET_RATIO else 'missed'} ({ratio:.0%})")
    else:
        print(f"target >= {TARGET_RATIO:.0%} of COPY with pre-rendered pages: not run (--simulator prerendered|both)")


async def run_mode(args: argparse.Namespace, prerendered: bool) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-bootstrap-"))
    sim_port, addon_port = free_port(), free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    print(f"generating {args.entries:,} time entries in the simulator "
          f"({'pre-rendered pages' if prerendered else 'rendering every page'}) ...", flush=True)
    started = time.monotonic()
    sim = start_simulator(sim_port, tmp, args, prerendered)
    db_url = ""
    try:
        info = wait_for(sim_url, sim)
        print(f"simulator ready in {time.monotonic() - started:.0f} s: {info['workspaces'][0]['timeEntries']:,} live entries")
        db_url = await create_migrated_database(test_database_url(), f"bench_boot_{uuid.uuid4().hex[:8]}")
        settings = Settings(
            base_url=f"http://127.0.0.1:{addon_port}",
            database={"url": db_url, "pool_size": 10},
            signing={"public_key": info["publicKey"]},
            http={"allowed_api_hosts": [f"127.0.0.1:{sim_port}"]},
            worker={"enabled": False},
            mirror={"refetch": "never"},
            logging={"level": "WARNING"},
            sync={"bootstrap_days": int(args.years * 366) + 30, "backfill_window": args.window,
                  "time_entry_source": args.source, "concurrency": args.concurrency, "writers": args.writers,
                  "batch_rows": args.batch, "scheduler": False, "direct_copy": not args.merge_only,
                  "slice_seconds": 86400},  # one claim: the figures are of one uninterrupted bootstrap
        )
        app = create_app(settings)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=addon_port, log_level="warning", lifespan="on"))
        serving = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
            await asyncio.sleep(0.05)
        try:
            return await figures(args, app.state.runtime, sim_url, db_url, settings, sim.pid)
        finally:
            server.should_exit = True
            await serving
    finally:
        sim.terminate()
        sim.wait(30)
        if db_url:
            await drop_database(db_url)


async def figures(
    args: argparse.Namespace, runtime: Runtime, sim_url: str, db_url: str, settings: Settings, sim_pid: int
) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=sim_url, timeout=120, trust_env=False) as control:
        installed = (await control.post("/__sim/install", json={"addonUrl": settings.base_url})).raise_for_status().json()
        workspace_id = installed["workspaceId"]
        while await run_one(runtime, kinds=("register_webhooks",)):
            pass
        calls_before = sum(s.value for s in next(iter(runtime.metrics.api_calls.collect())).samples if s.name.endswith("_total"))
        await asyncio.sleep(1.1)  # let Clockify's bucket refill after the registration burst
        reset_peak_rss()
        rss_before, _ = rss_mb()
        profiler: Any = None
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(async_mode="enabled")
            profiler.start()
        cpu0 = (cpu_seconds(os.getpid()), cpu_seconds(sim_pid), postgres_cpu_seconds(), os.getloadavg()[0])
        t0 = time.perf_counter()
        with GcTimer() as collector:
            assert await run_one(runtime, kinds=("bootstrap",))
        elapsed = time.perf_counter() - t0
        cpu = (cpu_seconds(os.getpid()) - cpu0[0], cpu_seconds(sim_pid) - cpu0[1], postgres_cpu_since(cpu0[2]))
        own_pg = await database_backends_cpu_since(runtime, cpu0[2])
        if profiler is not None:
            profiler.stop()
            Path(args.profile).write_text(profiler.output_text(unicode=False, color=False))  # noqa: ASYNC240 - after the measurement
        _, peak = rss_mb()
        stats = (await control.get("/__sim/stats")).json()
    async with runtime.sessions() as session:
        job = await session.scalar(select(Job).where(Job.kind == "bootstrap"))
        entries = int(await session.scalar(select(func.count()).select_from(TimeEntry)) or 0)
        tables = {name: int(await session.scalar(text(f"SELECT count(*) FROM {name}")) or 0)  # noqa: S608
                  for name in ("users", "projects", "clients", "tags", "tasks", "entities")}
    assert job is not None
    assert job.status == "DONE", job.error
    progress = job.progress
    calls = sum(s.value for s in next(iter(runtime.metrics.api_calls.collect())).samples if s.name.endswith("_total")) - calls_before
    rows = entries + sum(tables.values())
    te_seconds = float(progress.get("time_entry_seconds") or elapsed)
    load_before_copy = os.getloadavg()[0]
    copied, copy_seconds, copy_pg_cpu, copy_client_cpu = await copy_baseline(db_url, workspace_id, args.batch)
    load_after_copy = os.getloadavg()[0]
    page = settings.sync.report_page_size if progress.get("source") == "report" else settings.sync.page_size
    rate_bound = settings.rate_limit.rate * page
    copy_rate = copied / copy_seconds
    ceiling = min(rate_bound, copy_rate)
    te_rate = entries / te_seconds
    overall = rows / elapsed
    print()
    print(f"time entries           {entries:,} (simulator live: {stats['entries'][workspace_id]['live']:,})")
    print(f"reference rows         {sum(tables.values()):,} {tables}")
    print(f"bootstrap wall time    {elapsed:.1f} s ({te_seconds:.1f} s in time entries)")
    print(f"requests               {calls:,.0f} ({calls / elapsed:.1f}/s), source {progress.get('source')}, "
          f"window {args.window}, concurrency {args.concurrency}, writers {args.writers}, batch {args.batch}, "
          f"{'staging + merge only' if args.merge_only else 'direct COPY while rows are new'}")
    if "direct_rows" in progress or "merged_rows" in progress:
        print(f"written by             direct COPY {progress.get('direct_rows', 0):,} rows, staging + merge "
              f"{progress.get('merged_rows', 0):,} rows")
    print(f"entities/s             {overall:,.0f} overall, {te_rate:,.0f} time entries/s in their phase")
    print(f"rate-limit bound       {settings.rate_limit.rate:.0f} req/s x {page} rows/page = {rate_bound:,.0f} rows/s")
    print(f"COPY baseline          {copy_rate:,.0f} rows/s ({copied:,} rows in {copy_seconds:.1f} s, same rows, same indexes, "
          f"{args.batch}-row COPY statements); CPU per row: postgres {copy_pg_cpu / copied * 1e6:.1f} us, "
          f"client {copy_client_cpu / copied * 1e6:.1f} us; load average {load_before_copy:.2f} before, "
          f"{load_after_copy:.2f} after")
    print(f"vs min(bound, COPY)    {te_rate / ceiling:.0%} time entries, {overall / ceiling:.0%} overall "
          f"(target >= {TARGET_RATIO:.0%})")
    print(f"429 answers            {stats['counters'].get('http.429', 0)}")
    print(f"peak RSS (bootstrap)   {peak:.0f} MB (target < {TARGET_RSS_MB:.0f} MB); {rss_before:.0f} MB before it")
    print(f"CPU during bootstrap   add-on {cpu[0]:.1f} s, simulator {cpu[1]:.1f} s, postgres (all) {cpu[2]:.1f} s "
          f"= {sum(cpu) / elapsed:.2f} of {os.cpu_count()} cores; load average before {cpu0[3]:.2f}, "
          f"after {os.getloadavg()[0]:.2f}")
    print(f"garbage collector      {sum(collector.seconds):.2f} s in {sum(collector.count):,} collections "
          f"(by generation: {', '.join(f'{n:,} / {t:.2f} s' for n, t in zip(collector.count, collector.seconds, strict=True))})")
    per_entry = [c / entries * 1e6 for c in cpu]
    own_pg_us = own_pg / entries * 1e6
    print(f"CPU per time entry     add-on {per_entry[0]:.1f} us (target <= {TARGET_ADDON_US:.0f}), "
          f"simulator {per_entry[1]:.1f} us, postgres {per_entry[2]:.1f} us (all), {own_pg_us:.1f} us (this "
          f"database's backends; the COPY baseline's: {copy_pg_cpu / copied * 1e6:.1f} us)")
    return {"te_rate": te_rate, "copy_rate": copy_rate, "ratio": te_rate / ceiling, "addon_us": per_entry[0],
            "sim_us": per_entry[1], "pg_us": per_entry[2], "rss": peak, "own_pg_us": own_pg_us,
            "copy_pg_us": copy_pg_cpu / copied * 1e6, "http_429": float(stats["counters"].get("http.429", 0))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--projects", type=int, default=200)
    parser.add_argument("--years", type=float, default=3.0)
    parser.add_argument("--source", choices=("auto", "report", "user"), default="user")
    parser.add_argument("--window", choices=("day", "week", "month", "year"), default="year")
    parser.add_argument("--merge-only", action="store_true", help="no direct COPY: every batch staged and merged")
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--simulator", choices=("rendering", "prerendered", "both"), default="rendering",
                        help="pages rendered per request (as so far), pre-rendered at start (--prerender), or both runs")
    parser.add_argument("--profile", help="write a pyinstrument profile of the bootstrap here")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
