"""Webhook ingest under load: accepted requests/s, latency at a fixed rate, CPU per request, vs a bare ceiling.

    .venv/bin/python bench/webhook_ingest.py            # full run (about 4 minutes)
    .venv/bin/python bench/webhook_ingest.py --quick    # short phases, for a smoke run
    .venv/bin/python bench/webhook_ingest.py --servers uvicorn --inbox-workers off --profile /tmp/prof

Loopback only. The simulator serves on a free port (a thread of this process); a fresh
PostgreSQL database is created on ``TEST_DATABASE_URL`` (default 127.0.0.1:5432) and
dropped afterwards. ``clockify_addon`` runs as a subprocess (uvicorn with one worker,
then gunicorn with two uvicorn workers), is installed through the simulator's control
API, and the webhook token of NEW_TIME_ENTRY is read back from the database. A second
process (``bench/_loadgen.py``) sends signed NEW_TIME_ENTRY deliveries whose id and
description carry a counter, so every body is distinct and none is deduplicated. Each
service phase starts from a steady-state inbox: ``HISTORY_ROWS`` applied events, analysed.

Per server mode, with the same settings:

* ceiling: ``bench/_bare_app.py``, a bare FastAPI endpoint on the same route, same request;
* service with the in-process inbox workers off (ingest only) and on (the workers apply
  every event to the mirror on the same two cores, ``MIRROR__REFETCH=never``).

Figures: closed loop (``--connections`` keep-alive connections) requests/s; open loop at
``--rate``/s, latency from each request's scheduled send time (coordinated-omission
aware); the duplicate path (bodies already accepted, closed loop); CPU per request =
user+system time of the service's process group (/proc) over the requests it served.
``--profile DIR`` also records py-spy folded stacks of each service phase (closed loop and
``--rate``/s apart) and prints the heaviest frames. ``--pg-stats`` runs everything on a
private PostgreSQL cluster with pg_stat_statements (``bench/_pgstats.py``; the shared
server is left alone) and prints, for each service window, every statement and
PostgreSQL's counters per accepted webhook.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from clockify_core.db import create_engine, create_session_factory  # noqa: E402
from clockify_core.installations.models import SubscriptionStatus, WebhookSubscription  # noqa: E402
from clockify_core.jobs.models import Job, JobKind, JobStatus  # noqa: E402
from clockify_core.security.crypto import TokenCipher  # noqa: E402
from clockify_core.simulator.config import DataScale  # noqa: E402
from clockify_core.simulator.testing import ServedSimulator, served_simulator, small_config  # noqa: E402
from clockify_core.testing.databases import create_database, drop_database, test_database_url  # noqa: E402
from clockify_core.testing.processes import ServiceProcess, free_port  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from _pgstats import Window, cpu_seconds, live_processes, private_cluster, shared_server_settings  # noqa: E402

EVENT = "NEW_TIME_ENTRY"
SAMPLE = ROOT / "tests" / "fixtures" / "samples" / f"{EVENT}.json"
ENCRYPTION_KEY = "bench-webhook-ingest-0123456789abcdef0123456789"
TARGET_RATIO, TARGET_P99_MS = 0.5, 25.0


@dataclass
class Phase:
    name: str
    closed: dict[str, Any] = field(default_factory=dict)
    opened: dict[str, Any] = field(default_factory=dict)
    duplicate: dict[str, Any] | None = None
    batch: float | None = None  # mean events per group-commit write (one process's /metrics)
    pg_stats: list[str] = field(default_factory=list)  # --pg-stats: one report per measured window
    load: str = ""  # 1-minute load average when the phase ended


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def group_cpu_seconds(pgid: int) -> float:
    """user+system seconds of every live process in ``pgid`` (the service and its workers)."""
    return sum(cpu_seconds(fields) for _, fields in live_processes() if int(fields[2]) == pgid)


def process_cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    return cpu_seconds(stat[stat.rindex(")") + 2 :].split())


async def _backend_pids(db_url: str) -> list[int]:
    """PostgreSQL backends connected to the bench database (same machine: their CPU is in /proc)."""
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            )
            return [int(pid) for (pid,) in rows]
    finally:
        await engine.dispose()


def mean_batch(proc: ServiceProcess) -> float | None:
    """Mean events per group-commit write, from /metrics (one worker's view under gunicorn)."""
    try:
        text_ = httpx.get(proc.url + "/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    values = {}
    for line in text_.splitlines():
        for name in ("inbox_group_commit_events_sum", "inbox_group_commit_events_count"):
            if line.startswith(name + " "):
                values[name] = float(line.split()[1])
    count = values.get("inbox_group_commit_events_count")
    return values["inbox_group_commit_events_sum"] / count if count else None


def body_template(workspace_id: str) -> str:
    body = json.loads(SAMPLE.read_text())
    body["workspaceId"] = workspace_id
    body["id"] = "{n}"
    body["description"] = "Bench entry {n}"
    return json.dumps(body, separators=(",", ":"))


def service_env(sim: ServedSimulator, db_url: str, port: int, *, workers: bool) -> dict[str, str]:
    netloc = sim.base_url.split("://", 1)[1].rstrip("/")
    return {
        "CLOCKIFY_DB_URL": db_url,
        "CLOCKIFY_BASE_URL": f"http://127.0.0.1:{port}",
        "CLOCKIFY_PUBLIC_KEY": sim.public_key_pem,
        "CLOCKIFY_ALLOWED_API_HOSTS": netloc,
        "CLOCKIFY_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "CLOCKIFY_WORKER__ENABLED": str(workers).lower(),
        "CLOCKIFY_MIRROR__REFETCH": "never",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "WARNING",
        "WEB_CONCURRENCY": "2",
    }


async def _registered(db_url: str) -> tuple[str, str, str] | None:
    """(workspace, path, token) of the NEW_TIME_ENTRY webhook once registration is over."""
    engine = create_engine(db_url)
    try:
        async with create_session_factory(engine)() as s:
            pending = await s.scalar(
                select(Job.id).where(
                    Job.kind == JobKind.REGISTER_WEBHOOKS, Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING])
                )
            )
            done = await s.scalar(
                select(Job.id).where(Job.kind == JobKind.REGISTER_WEBHOOKS, Job.status == JobStatus.DONE)
            )
            sub = await s.scalar(
                select(WebhookSubscription).where(
                    WebhookSubscription.event_type == EVENT, WebhookSubscription.status == SubscriptionStatus.ACTIVE
                )
            )
    finally:
        await engine.dispose()
    if pending is not None or done is None or sub is None or not sub.token_encrypted:
        return None
    return sub.workspace_id, sub.path, TokenCipher(ENCRYPTION_KEY).decrypt(sub.token_encrypted)


HISTORY_ROWS = 20_000


async def _reset_inbox(db_url: str, workspace_id: str) -> None:
    """An inbox in its steady state: ``HISTORY_ROWS`` applied events of the workspace, analysed.

    Production's inbox holds days of applied events (retention) and has statistics. An
    empty, just-analysed table instead made the batch INSERT's cached generic plan look up
    an entity's latest event by a sequential scan, which stayed cached while the table
    grew (until autoanalyze, about a minute): in some service processes and not others, so
    it decided comparisons (docs/benchmarks.md, "Where PostgreSQL's work per webhook goes").
    """
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("TRUNCATE inbox_events, time_entries"))
            await conn.execute(
                text(
                    "INSERT INTO inbox_events (workspace_id, event_type, source, dedup_key, entity_key, body, status,"
                    " attempts, deliveries, next_attempt_at, received_at, processed_at)"
                    " SELECT :ws, 'NEW_TIME_ENTRY', 'clockify', encode(sha256(('history' || g)::bytea), 'hex'),"
                    " 'TIME_ENTRY:' || lpad(to_hex(g), 24, 'f'), '{}', 'DONE', 1, 1, now() - interval '1 day',"
                    " now() - interval '1 day', now() - interval '1 day' FROM generate_series(1, :n) AS g"
                ),
                {"ws": workspace_id, "n": HISTORY_ROWS},
            )
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE inbox_events"))
    finally:
        await engine.dispose()


async def _create_extension(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
    finally:
        await engine.dispose()


async def _inbox_rows(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM inbox_events"))).scalar_one())
    finally:
        await engine.dispose()


def install(sim: ServedSimulator, db_url: str, workdir: Path) -> tuple[str, str, str]:
    port = free_port()
    proc = ServiceProcess(
        "clockify_addon.main:app", env=service_env(sim, db_url, port, workers=True), port=port,
        log_path=workdir / "install.log", cwd=ROOT,
    ).start()
    try:
        proc.wait_ready()
        sim.control.post("/__sim/install", json={"addonUrl": proc.url}).raise_for_status()
        deadline = time.monotonic() + 60
        while (found := asyncio.run(_registered(db_url))) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"webhook registration did not finish: {proc.tail_log()}")
            time.sleep(0.3)
        return found
    finally:
        proc.stop()


class Runner:
    def __init__(self, args: argparse.Namespace, workdir: Path, template: str, path: str, token: str,
                 db_url: str) -> None:
        self.args = args
        self.db_url = db_url
        self.workdir = workdir
        self.spec_base = {
            "path": path,
            "headers": [["clockify-signature", token], ["clockify-webhook-event-type", EVENT]],
            "body": template,
            "hex": True,  # {n} is the entry's id, which must look like a Clockify id
        }
        self.run_no = 0

    def loadgen(self, port: int, mode: str, *, prefix: str, cycle: int | None = None,
                duration: float | None = None, connections: int | None = None) -> dict[str, Any]:
        spec = {**self.spec_base, "prefix": prefix, "start": 0, "cycle": cycle}
        spec_path = self.workdir / f"spec-{prefix}.json"
        spec_path.write_text(json.dumps(spec))
        a = self.args
        cmd = [
            sys.executable, str(ROOT / "bench" / "_loadgen.py"), "--port", str(port), "--spec", str(spec_path),
            "--mode", mode, "--duration", str(duration or a.duration), "--warmup", str(a.warmup),
            "--rate", str(a.rate),
            "--connections", str(connections or (a.connections if mode == "closed" else a.open_connections)),
        ]
        out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError(f"load generator failed ({out.returncode}): {out.stderr[-2000:]}")
        return dict(json.loads(out.stdout))

    def measure(self, proc: ServiceProcess, name: str, *, duplicates: bool) -> Phase:
        self.run_no += 1
        phase = Phase(name)
        prefix = f"r{os.getpid()}x{self.run_no}-"
        profiler = self.start_profiler(proc, f"{name} closed")
        phase.closed = self.timed(proc, "closed", prefix=prefix + "c", title=f"{name}, closed loop")
        if profiler is not None:
            self.stop_profiler(profiler, f"{name} closed")
        profiler = self.start_profiler(proc, f"{name} open")
        phase.opened = self.timed(proc, "open", prefix=prefix + "o", title=f"{name}, {self.args.rate:.0f}/s offered")
        if profiler is not None:
            self.stop_profiler(profiler, f"{name} open")
        if duplicates:
            # Replays bodies the closed loop stored: each hits the dedup path of a distinct row.
            phase.duplicate = self.timed(proc, "closed", prefix=prefix + "c", cycle=max(1, phase.closed["total_ok"]),
                                         duration=self.args.duration / 2, title=f"{name}, duplicates")
        phase.batch = mean_batch(proc)
        phase.load = loadavg().split()[0]
        phase.pg_stats = [r.pop("pg_stats") for r in (phase.closed, phase.opened, phase.duplicate or {}) if "pg_stats" in r]
        return phase

    def timed(self, proc: ServiceProcess, mode: str, *, title: str, **kwargs: Any) -> dict[str, Any]:
        """One load generator run, with CPU per request (warm-up included) of the service and
        of its PostgreSQL backends (backends that exit during the run are not counted)."""
        assert proc.proc is not None
        before = {pid: process_cpu_seconds(pid) for pid in asyncio.run(_backend_pids(self.db_url))}
        window = None
        if self.args.pg_stats and not title.startswith("ceiling"):
            window = Window(self.db_url, make_url(self.db_url).port or 5432)
            asyncio.run(window.start())
        cpu0 = group_cpu_seconds(proc.proc.pid)
        result = self.loadgen(proc.port, mode, **kwargs)
        n = max(1, result["total_sent"])
        result["cpu_ms"] = (group_cpu_seconds(proc.proc.pid) - cpu0) * 1000 / n
        if window is not None:
            result["pg_stats"] = asyncio.run(window.report(result["total_ok"], title))
            print(result["pg_stats"], flush=True)
        after = asyncio.run(_backend_pids(self.db_url))
        result["pg_cpu_ms"] = sum(process_cpu_seconds(pid) - before.get(pid, 0.0) for pid in after) * 1000 / n
        return result

    def start_profiler(self, proc: ServiceProcess, name: str) -> subprocess.Popen[bytes] | None:
        if not self.args.profile or name.startswith("ceiling"):
            return None
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        out = Path(self.args.profile) / f"{name.replace(' ', '_')}.folded"
        return subprocess.Popen(
            [py_spy, "record", "--pid", str(proc.proc.pid), "--subprocesses", "--format", "raw", "--rate", "250",
             "--output", str(out), "--gil"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def stop_profiler(self, profiler: subprocess.Popen[bytes], name: str) -> None:
        profiler.send_signal(2)  # SIGINT: py-spy writes its output and exits
        profiler.wait(30)
        out = Path(self.args.profile) / f"{name.replace(' ', '_')}.folded"
        if out.is_file():
            print(f"\n--- profile {name} ({out}) ---")
            print(top_frames(out))


def top_frames(folded: Path, limit: int = 25) -> str:
    """Inclusive share of the heaviest frames in py-spy's folded stacks (idle frames excluded)."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if any("select" in f and ("selectors" in f or "epoll" in f) for f in frames[-2:]) or "run_once" in frames[-1]:
            continue  # the event loop waiting for I/O
        n = int(count)
        total += n
        for frame in set(frames):
            inclusive[frame] += n
    rows = [f"{n / total:6.1%}  {frame}" for frame, n in inclusive.most_common(limit)] if total else []
    return "\n".join(rows)


def start_service(sim: ServedSimulator, db_url: str, server: str, workdir: Path, *, workers: bool,
                  bare: bool = False, extra_env: dict[str, str] | None = None) -> ServiceProcess:
    port = free_port()
    env = {**service_env(sim, db_url, port, workers=workers), **(extra_env or {})}
    app = "clockify_addon.main:app"
    if bare:
        env["PYTHONPATH"] = str(ROOT / "bench")
        app = "_bare_app:app"
    proc = ServiceProcess(app, env=env, port=port, server=server, workers=1 if server == "uvicorn" else 2,
                          log_path=workdir / f"{server}-{'bare' if bare else 'svc'}.log", cwd=ROOT).start()
    proc.wait_ready("/docs" if bare else "/ready")
    return proc


def fmt_row(phase: Phase, ceiling: Phase | None) -> str:
    c, o = phase.closed, phase.opened
    ratio = f"{c['ok_rps'] / ceiling.closed['ok_rps']:6.0%}" if ceiling and ceiling.closed["ok_rps"] else "     -"
    dup = f"{phase.duplicate['ok_rps']:8.0f}" if phase.duplicate else "       -"
    errors = {k: v for k, v in {**c["statuses"], **o["statuses"]}.items() if not k.startswith("2")}
    return (
        f"{phase.name:<28} {c['ok_rps']:8.0f} {ratio} {c['latency_ms']['p50']:7.1f}"
        f" {o['ok_rps']:7.0f} {o['latency_ms']['p50']:7.2f} {o['latency_ms']['p99']:7.2f} {o['latency_ms']['max']:7.1f}"
        f" {c['cpu_ms']:7.3f} {o['cpu_ms']:7.3f} {c['pg_cpu_ms']:7.3f} {dup} {phase.batch or float('nan'):6.1f}"
        f" {phase.load:>5}  {errors or ''}"
    )


def verdicts(results: dict[str, list[Phase]], rate: float) -> list[str]:
    """The two targets of docs/benchmarks.md ("Webhook ingest"), met or missed, on the uvicorn phases:
    (a) closed loop, inbox workers off: at least half the ceiling's requests/s; (b) ``rate``/s
    offered (1,000 by default), inbox workers on (the production default): p99 at most 25 ms."""
    phases = {p.name: p for p in results.get("uvicorn", [])}
    ceiling = phases.get("ceiling uvicorn")
    off, on = phases.get("service uvicorn workers=off"), phases.get("service uvicorn workers=on")
    lines = []
    if ceiling and off:
        ratio = off.closed["ok_rps"] / ceiling.closed["ok_rps"]
        cpu_ratio = ceiling.closed["cpu_ms"] / off.closed["cpu_ms"]
        lines.append(f"target (a) closed loop, one uvicorn worker, inbox workers off: {off.closed['ok_rps']:.0f} of"
                     f" {ceiling.closed['ok_rps']:.0f} req/s = {ratio:.0%} of the ceiling ({cpu_ratio:.0%} by CPU per"
                     f" request) -> {'MET' if ratio >= TARGET_RATIO else 'MISSED'} (>= {TARGET_RATIO:.0%})")
    else:
        lines.append("target (a) not measured: needs --servers uvicorn --inbox-workers off")
    if on:
        lat = on.opened["latency_ms"]
        errors = sum(n for k, n in on.opened["statuses"].items() if not k.startswith("2"))
        ok = lat["p99"] <= TARGET_P99_MS and errors == 0
        lines.append(f"target (b) {rate:.0f}/s offered, one uvicorn worker, inbox workers on: {on.opened['ok_rps']:.0f}"
                     f" req/s accepted, p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.1f} ms, p99.9 {lat['p999']:.1f} ms,"
                     f" max {lat['max']:.1f} ms, {errors} non-2xx -> {'MET' if ok else 'MISSED'}"
                     f" (p99 <= {TARGET_P99_MS:.0f} ms, every request accepted)")
    else:
        lines.append("target (b) not measured: needs --servers uvicorn --inbox-workers on")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s phases, 1 s warm-up")
    parser.add_argument("--servers", default="uvicorn,gunicorn", help="uvicorn (1 worker), gunicorn (2 workers)")
    parser.add_argument("--inbox-workers", default="off,on", help="in-process inbox/job workers during the measurement")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measured phase")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=32, help="closed-loop connections")
    parser.add_argument("--open-connections", type=int, default=64, help="connection pool of the open loop")
    parser.add_argument("--rate", type=float, default=1000.0, help="offered rate of the open loop (requests/s)")
    parser.add_argument("--profile", metavar="DIR", help="record py-spy folded stacks of each service phase here")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    parser.add_argument("--pg-stats", action="store_true",
                        help="run on a private PostgreSQL cluster with pg_stat_statements and print what it did"
                             " per accepted webhook in each service window")
    parser.add_argument("--logs", metavar="DIR", help="keep the service logs here (default: a temporary directory)")
    parser.add_argument("--service-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the service, e.g. CLOCKIFY_WEBHOOKS__GROUP_COMMIT_FLUSHERS=1")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup = 3.0, 1.0
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    servers = [s for s in args.servers.split(",") if s]
    extra_env = dict(item.split("=", 1) for item in args.service_env)
    modes = [m == "on" for m in args.inbox_workers.split(",") if m]

    print(f"load average at start: {loadavg()}  ({os.cpu_count()} CPUs)")
    with contextlib.ExitStack() as stack:
        server_url = test_database_url()
        if args.pg_stats:
            settings = shared_server_settings(make_url(server_url).set(drivername="postgresql").render_as_string(False))
            server_url = stack.enter_context(private_cluster(free_port(), settings))
            print(f"private PostgreSQL cluster {server_url} with pg_stat_statements, {settings}")
        run(args, servers, modes, extra_env, server_url)


def run(args: argparse.Namespace, servers: list[str], modes: list[bool], extra_env: dict[str, str],
        server_url: str) -> None:
    config = small_config(scale=DataScale(workspaces=1, users=3, projects=3, time_entries=50))
    db_url = asyncio.run(create_database(server_url, f"bench_ingest_{os.getpid()}"))
    if args.pg_stats:
        asyncio.run(_create_extension(db_url))
    results: dict[str, list[Phase]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp, served_simulator(config) as sim:
        workdir = Path(args.logs or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            workspace_id, path, token = install(sim, db_url, workdir)
            runner = Runner(args, workdir, body_template(workspace_id), path, token, db_url)
            for server in servers:
                phases: list[Phase] = []
                proc = start_service(sim, db_url, server, workdir, workers=False, bare=True)
                try:
                    phases.append(runner.measure(proc, f"ceiling {server}", duplicates=False))
                finally:
                    proc.stop()
                for workers in modes:
                    asyncio.run(_reset_inbox(db_url, workspace_id))
                    name = f"service {server} workers={'on' if workers else 'off'}"
                    proc = start_service(sim, db_url, server, workdir, workers=workers, extra_env=extra_env)
                    try:
                        phases.append(runner.measure(proc, name, duplicates=True))
                    finally:
                        if not proc.stop():
                            print(f"warning: {name} did not stop cleanly:\n{proc.tail_log()}")
                    stored = asyncio.run(_inbox_rows(db_url))
                    accepted = sum(p["total_ok"] for p in (phases[-1].closed, phases[-1].opened))
                    print(f"{name}: {stored - HISTORY_ROWS} inbox rows after the phase (distinct bodies answered 2xx:"
                          f" {accepted})")
                results[server] = phases
        finally:
            asyncio.run(drop_database(db_url))

    print(f"\nload average at end: {loadavg()}")
    print(f"closed loop: {args.connections} connections; open loop: {args.rate:.0f}/s offered, "
          f"{args.duration:.0f} s measured after {args.warmup:.0f} s warm-up")
    print(f"\n{'':<28} {'closed':>8} {'ratio':>6} {'p50':>7} {'open':>7} {'p50':>7} {'p99':>7} {'max':>7} {'CPU':>7} {'CPU':>7} {'PG CPU':>7} {'dup':>8} {'batch':>6} {'load':>5}")
    print(f"{'':<28} {'req/s':>8} {'':>6} {'ms':>7} {'req/s':>7} {'ms':>7} {'ms':>7} {'ms':>7} {'closed':>7} {'open':>7} {'closed':>7} {'req/s':>8} {'events':>6} {'1 min':>5}")
    for phases in results.values():
        ceiling = phases[0]
        for phase in phases:
            print(fmt_row(phase, None if phase is ceiling else ceiling))
    print("closed: keep-alive connections each sending the next request on the answer; open: latency from the"
          " scheduled send time; CPU: ms of the service's processes per request; PG CPU: ms of its PostgreSQL"
          " backends per request; dup: closed loop replaying accepted bodies; batch: mean events per inbox write.")
    print("\n" + "\n".join(verdicts(results, args.rate)))
    if args.json:
        Path(args.json).write_text(json.dumps({s: [p.__dict__ for p in ps] for s, ps in results.items()}, indent=2))


if __name__ == "__main__":
    main()
