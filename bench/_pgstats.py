"""A private PostgreSQL cluster with pg_stat_statements, and what it did per accepted webhook.

Used by ``bench/webhook_ingest.py --pg-stats``. The shared server on 5432 is never
restarted (tests run against it): this starts a throwaway cluster (``initdb`` into a
temporary directory, a free port, ``shared_preload_libraries=pg_stat_statements``,
``track=all``) with the shared server's ``fsync`` and ``synchronous_commit``, so commit
costs are the same. Around a measured window, :class:`Window` resets the statement
statistics, snapshots the cumulative views (pg_stat_database, pg_stat_bgwriter,
pg_stat_wal, pg_stat_user_tables) and the CPU of every process of the cluster (backends,
autovacuum, WAL writer, checkpointer), and :func:`report` prints the difference per
accepted webhook.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def shared_server_settings(dsn: str) -> dict[str, str]:
    """fsync and synchronous_commit of the server the tests use (the private cluster copies them)."""
    out = subprocess.run(
        ["psql", dsn, "-AtX", "-c", "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit')"],
        check=True, capture_output=True, text=True,
    ).stdout
    return dict(line.split("|", 1) for line in out.split())


@contextmanager
def private_cluster(port: int, settings: dict[str, str]) -> Iterator[str]:
    """A started throwaway cluster on 127.0.0.1:``port``; yields its server URL, removed at exit."""
    root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    options = {
        "port": str(port), "listen_addresses": "127.0.0.1", "unix_socket_directories": str(root),
        "shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "all",
        "pg_stat_statements.track_planning": "on", "pg_stat_statements.max": "10000", "track_io_timing": "on", **settings,
    }
    try:
        subprocess.run(_as_postgres([str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                     "--no-sync", "-E", "UTF8"]), check=True, capture_output=True)
        opts = " ".join(f"-c {k}={v}" for k, v in options.items())
        subprocess.run(_as_postgres([str(BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-o", opts,
                                     "-w", "start"]), check=True, capture_output=True)
        try:
            yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(_as_postgres([str(BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                           check=False, capture_output=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def cluster_cpu_seconds(port: int) -> dict[str, float]:
    """user+system seconds of each process of the cluster on ``port``, by its kind (backend, autovacuum...)."""
    postmaster = next(
        (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p).startswith(
            f"{BIN / 'postgres'}") and f"port={port}" in _cmdline(p)),
        None,
    )
    totals: dict[str, float] = {}
    if postmaster is None:
        return totals
    for entry, fields in live_processes():
        pid, ppid = int(entry.name), int(fields[1])
        if pid != postmaster and ppid != postmaster:
            continue
        kind = "postmaster" if pid == postmaster else _kind(_cmdline(entry))
        totals[kind] = totals.get(kind, 0.0) + cpu_seconds(fields)
    return totals


def live_processes() -> Iterator[tuple[Path, list[str]]]:
    """Every live process's /proc entry and its stat fields after the command name
    (fields[1] is the parent, fields[2] the process group, fields[11:13] user and system ticks)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        yield entry, stat[stat.rindex(")") + 2 :].split()


def cpu_seconds(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _cmdline(entry: Path) -> str:
    try:
        return (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _kind(title: str) -> str:
    # Process titles: "postgres: autovacuum worker ...", "postgres: postgres bench_x 127.0.0.1(...) idle".
    rest = title.removeprefix("postgres: ")
    for kind in ("autovacuum", "walwriter", "checkpointer", "background writer", "logical replication",
                 "stats", "archiver"):
        if rest.startswith(kind):
            return kind
    return "backends"


_VIEWS = {
    "database": "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_returned, tup_fetched, blks_hit,"
                " blks_read FROM pg_stat_database WHERE datname = current_database()",
    "bgwriter": "SELECT checkpoints_timed, checkpoints_req, buffers_checkpoint, buffers_clean, buffers_backend,"
                " buffers_alloc FROM pg_stat_bgwriter",
    "wal": "SELECT wal_records, wal_fpi, wal_bytes::bigint AS wal_bytes, wal_write, wal_sync FROM pg_stat_wal",
    "tables": "SELECT sum(n_tup_ins)::bigint AS n_tup_ins, sum(n_tup_upd)::bigint AS n_tup_upd,"
              " sum(n_tup_hot_upd)::bigint AS n_tup_hot_upd, sum(autovacuum_count)::bigint AS autovacuum_count,"
              " sum(autoanalyze_count)::bigint AS autoanalyze_count FROM pg_stat_user_tables",
}


@dataclass
class Window:
    """The cumulative counters at the start of a measured window."""

    db_url: str
    port: int
    views: dict[str, dict[str, int]] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    started: float = 0.0

    async def start(self) -> None:
        conn = await asyncpg.connect(_dsn(self.db_url))
        try:
            self.views = await _views(conn)
            await conn.execute("SELECT pg_stat_statements_reset()")
        finally:
            await conn.close()
        self.cpu = cluster_cpu_seconds(self.port)
        self.started = time.monotonic()

    async def report(self, accepted: int, title: str) -> str:
        """Every statement of the window and the views' differences, per accepted webhook."""
        elapsed = time.monotonic() - self.started
        cpu = cluster_cpu_seconds(self.port)
        conn = await asyncpg.connect(_dsn(self.db_url))
        try:
            rows = await conn.fetch(
                "SELECT s.query, s.calls, s.total_exec_time, s.plans, s.total_plan_time, s.rows, s.shared_blks_hit, s.shared_blks_dirtied,"
                " s.shared_blks_read, s.wal_bytes::bigint AS wal_bytes, s.toplevel"
                " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
                " WHERE d.datname = current_database() AND s.query NOT LIKE '%pg_stat_statements%'"
                " ORDER BY s.total_exec_time DESC"
            )
            views = await _views(conn)
        finally:
            await conn.close()
        n = max(1, accepted)
        lines = [f"\n--- PostgreSQL per accepted webhook: {title} ({accepted} accepted in {elapsed:.1f} s) ---",
                 f"{'calls':>8} {'/webhook':>9} {'total ms':>9} {'mean ms':>8} {'us/webhook':>10} {'plans':>6}"
                 f" {'plan us/wh':>10} {'rows':>8}"
                 f" {'hit/call':>8} {'dirt/call':>9} {'WAL B/call':>10}  statement"]
        calls = exec_ms = plan_ms = 0.0
        for r in rows:
            if not r["toplevel"]:
                continue  # nested (inside a function): its time is in the calling statement's
            calls += r["calls"]
            exec_ms += r["total_exec_time"]
            plan_ms += r["total_plan_time"]
            c = max(1, r["calls"])
            lines.append(
                f"{r['calls']:8d} {r['calls'] / n:9.3f} {r['total_exec_time']:9.1f} {r['total_exec_time'] / c:8.3f}"
                f" {r['total_exec_time'] * 1000 / n:10.1f} {r['plans']:6d} {r['total_plan_time'] * 1000 / n:10.1f}"
                f" {r['rows']:8d} {r['shared_blks_hit'] / c:8.1f}"
                f" {r['shared_blks_dirtied'] / c:9.2f} {r['wal_bytes'] / c:10.0f}  {_short(r['query'])}"
            )
        lines.append(f"total: {calls / n:.3f} statements, {exec_ms * 1000 / n:.1f} us of execution and"
                     f" {plan_ms * 1000 / n:.1f} us of planning per accepted webhook ({calls:.0f} statements,"
                     f" {exec_ms:.0f} ms, {plan_ms:.0f} ms)")
        delta = {view: {k: v - self.views[view].get(k, 0) for k, v in values.items()} for view, values in views.items()}
        for view, values in delta.items():
            lines.append(f"{view}: " + ", ".join(f"{k} {v} ({v / n:.3g}/webhook)" for k, v in values.items()))
        spent = {kind: cpu.get(kind, 0.0) - self.cpu.get(kind, 0.0) for kind in cpu}
        lines.append("cluster CPU ms per accepted webhook: " + ", ".join(
            f"{kind} {s * 1000 / n:.3f}" for kind, s in sorted(spent.items(), key=lambda kv: -kv[1]) if s > 0
        ) + f"; all {sum(spent.values()) * 1000 / n:.3f}")
        return "\n".join(lines)


async def _views(conn: Any) -> dict[str, dict[str, int]]:
    out = {}
    for name, query in _VIEWS.items():
        row = await conn.fetchrow(query)
        out[name] = {k: int(v or 0) for k, v in dict(row).items()}
    return out


def _short(query: str, width: int = 150) -> str:
    one = " ".join(query.split())
    return one if len(one) <= width else one[: width - 3] + "..."
