"""Real processes: the CLI runs jobs, and a worker killed with SIGKILL mid-backfill loses nothing.

The simulator serves on a loopback port, the service runs as a uvicorn subprocess (it
receives INSTALLED), and the ``clockify-addon`` commands run as their own processes on
the same PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from clockify_core.db import create_engine, create_session_factory
from clockify_core.jobs.models import Job
from clockify_core.mirror.models import TimeEntry
from clockify_core.simulator.state import Simulator
from clockify_core.simulator.testing import ServedSimulator
from clockify_core.sync.service import day_start
from clockify_core.sync.timeentries import windows
from clockify_core.testing.processes import ServiceProcess, free_port
from tests.sync.conftest import assert_raw_match, assert_same, expected, mirrored

pytestmark = pytest.mark.slow
COMMAND = str(Path(sys.executable).with_name("clockify-addon"))


def environment(sim: ServedSimulator, db_url: str, port: int) -> dict[str, str]:
    return {
        "CLOCKIFY_DB_URL": db_url,
        "CLOCKIFY_BASE_URL": f"http://127.0.0.1:{port}",
        "CLOCKIFY_PUBLIC_KEY": sim.public_key_pem,
        "CLOCKIFY_ALLOWED_API_HOSTS": httpx.URL(sim.base_url).netloc.decode(),
        "CLOCKIFY_WORKER__ENABLED": "false",
        "CLOCKIFY_WORKER__LEASE_SECONDS": "2",
        "CLOCKIFY_WORKER__POLL_INTERVAL": "0.1",
        "CLOCKIFY_SYNC__SCHEDULER": "false",
        "CLOCKIFY_SYNC__BOOTSTRAP_DAYS": "1",  # history is the backfill's job here
        "CLOCKIFY_SYNC__HISTORY_BACKFILL": "false",  # the operator's backfill, not the one bootstrap queues
        "LOG_FORMAT": "json",
    }


def command(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COMMAND, *args], env={**os.environ, **env}, cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def report_reads(state: Simulator) -> int:
    return sum(1 for r in state.requests if r.path.endswith("/reports/detailed"))


async def backfill_job(db_url: str) -> Job | None:
    engine = create_engine(db_url)
    try:
        async with create_session_factory(engine)() as s:
            return await s.scalar(select(Job).where(Job.kind == "backfill"))
    finally:
        await engine.dispose()


async def rows(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        async with create_session_factory(engine)() as s:
            return int(await s.scalar(select(func.count()).select_from(TimeEntry)) or 0)
    finally:
        await engine.dispose()


def test_cli_runs_jobs_and_a_killed_backfill_resumes(simulator_server: ServedSimulator, pg_url: str, tmp_path: Path) -> None:
    sim = simulator_server
    port = free_port()
    env = environment(sim, pg_url, port)
    web = ServiceProcess("clockify_addon.main:app", env=env, port=port, log_path=tmp_path / "web.log", cwd=tmp_path)
    web.start()
    try:
        web.wait_ready()
        workspace_id = sim.control.post("/__sim/install", json={"addonUrl": web.url}).raise_for_status().json()["workspaceId"]
    finally:
        assert web.stop(), web.tail_log()

    booted = command(env, "bootstrap", "--run", cwd=tmp_path)
    assert booted.returncode == 0, booted.stdout + booted.stderr
    assert "queued bootstrap job" in booted.stdout
    assert "bootstrap DONE" in booted.stdout

    state = sim.server.server.config.app.state.simulator
    ws = state.workspace(workspace_id)
    first = min(ws.entries.start[r] for r in ws.entries.by_start.rows)
    since = datetime.fromtimestamp(first, UTC).date().isoformat()
    queued = command(env, "backfill", "--since", since, "--window", "month", workspace_id, cwd=tmp_path)
    assert queued.returncode == 0, queued.stderr
    reports_before = report_reads(state)

    sim.control.put("/__sim/faults", json={"latency_ms": 150}).raise_for_status()
    worker = subprocess.Popen([COMMAND, "worker"], env={**os.environ, **env}, cwd=tmp_path, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not ((job := asyncio.run(backfill_job(pg_url))) and "done_until" in job.cursor):
            assert time.monotonic() < deadline, "the backfill never committed a window"
            time.sleep(0.1)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(15)
    killed = asyncio.run(backfill_job(pg_url))
    assert killed is not None
    assert (killed.status, killed.attempts) == ("RUNNING", 1)
    assert 0 < asyncio.run(rows(pg_url)) < len(ws.entries)

    sim.control.put("/__sim/faults", json={}).raise_for_status()
    worker = subprocess.Popen([COMMAND, "worker"], env={**os.environ, **env}, cwd=tmp_path, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while (job := asyncio.run(backfill_job(pg_url))) is None or job.status != "DONE":
            assert time.monotonic() < deadline, job and (job.status, job.error, job.cursor)
            time.sleep(0.2)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
    assert job.attempts == 2  # claimed again after the dead worker's lease ran out
    # One report page per month window (the simulator's months hold far fewer than 1,000
    # entries): the restart re-read at most the windows in flight, it did not start over.
    n_windows = len(windows(day_start(date.fromisoformat(since)), datetime.fromisoformat(job.cursor["until"]), "month"))
    assert n_windows <= report_reads(state) - reports_before <= n_windows + 2  # WINDOW_CONCURRENCY

    async def compare() -> None:
        engine = create_engine(pg_url)
        try:
            async with create_session_factory(engine)() as s:
                assert_same("time_entry", await mirrored(s, workspace_id, "time_entry"), expected(ws, "time_entry"))
                # Against the simulator's storage, not its rendering through our mapping.
                await assert_raw_match(s, ws)
        finally:
            await engine.dispose()

    asyncio.run(compare())
    listed = command(env, "jobs", "--kind", "backfill", cwd=tmp_path)
    assert listed.returncode == 0
    assert "backfill DONE 100.0%" in listed.stdout
    synced = command(env, "sync", "--run", cwd=tmp_path)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "sync DONE" in synced.stdout
