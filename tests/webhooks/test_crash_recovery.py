"""kill -9 between accept and apply loses nothing; after a restart each event is applied once.

Real processes: the simulator serves on a loopback port and sends traffic; the service
runs as a uvicorn subprocess on PostgreSQL. Clockify's API is slowed down so the worker
is in the middle of events (claimed, re-fetching) when the process is killed.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from clockify_core.db import create_engine, create_session_factory
from clockify_core.mirror.mapping import parse_duration
from clockify_core.mirror.models import TimeEntry
from clockify_core.simulator import render
from clockify_core.simulator.testing import ServedSimulator
from clockify_core.testing.processes import ServiceProcess, free_port
from clockify_core.webhooks.models import InboxEvent

pytestmark = pytest.mark.slow


def _service(sim: ServedSimulator, db_url: str, port: int, log: Path, *, worker: bool) -> ServiceProcess:
    env = {
        "CLOCKIFY_DB_URL": db_url,
        "CLOCKIFY_BASE_URL": f"http://127.0.0.1:{port}",
        "CLOCKIFY_PUBLIC_KEY": sim.public_key_pem,
        "CLOCKIFY_ALLOWED_API_HOSTS": httpx.URL(sim.base_url).netloc.decode(),
        "CLOCKIFY_WORKER__ENABLED": str(worker).lower(),
        "CLOCKIFY_WORKER__CONCURRENCY": "1",
        "CLOCKIFY_WORKER__BATCH_SIZE": "5",
        "CLOCKIFY_WORKER__LEASE_SECONDS": "2",
        "CLOCKIFY_WORKER__POLL_INTERVAL": "0.1",
        "CLOCKIFY_MIRROR__REFETCH": "always",
        "LOG_FORMAT": "json",
    }
    return ServiceProcess("clockify_addon.main:app", env=env, port=port, log_path=log)


async def _max_attempts(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        async with create_session_factory(engine)() as s:
            return int(await s.scalar(select(func.max(InboxEvent.attempts))) or 0)
    finally:
        await engine.dispose()


async def _counts(db_url: str) -> dict[str, int]:
    engine = create_engine(db_url)
    try:
        async with create_session_factory(engine)() as s:
            rows = (await s.execute(select(InboxEvent.status, func.count()).group_by(InboxEvent.status))).all()
            return {status: int(n) for status, n in rows}
    finally:
        await engine.dispose()


def test_kill_between_accept_and_apply_loses_nothing(simulator_server: ServedSimulator, pg_url: str, tmp_path: Path) -> None:
    sim = simulator_server
    control = sim.control
    port = free_port()
    first = _service(sim, pg_url, port, tmp_path / "first.log", worker=True).start()
    try:
        first.wait_ready()
        installed = control.post("/__sim/install", json={"addonUrl": first.url}).raise_for_status().json()
        workspace_id = installed["workspaceId"]
        time.sleep(1.0)  # let the registration job finish before Clockify slows down
        control.put("/__sim/faults", json={"latency_ms": 400}).raise_for_status()
        control.post("/__sim/traffic", json={"rate": 40, "duration": 2, "workspaceId": workspace_id, "wait": True}).raise_for_status()
        control.post("/__sim/deliveries/drain").raise_for_status()
        deliveries = control.get("/__sim/deliveries", params={"addonId": installed["addonId"]}).json()["deliveries"]
        accepted = [d for d in deliveries if d["statusCode"] == 200]
        assert accepted, {d['statusCode'] for d in deliveries}
        assert len(accepted) == len(deliveries), {d['statusCode'] for d in deliveries}
        before = asyncio.run(_counts(pg_url))
        assert before.get("PENDING", 0) + before.get("PROCESSING", 0) > 0, before  # work was in flight
    finally:
        first.kill()

    # Every delivery answered 2xx is in the inbox, even though the process died.
    after_kill = asyncio.run(_counts(pg_url))
    assert sum(after_kill.values()) == len(accepted)
    assert after_kill.get("PROCESSING", 0) > 0, after_kill  # killed in the middle of applying

    control.put("/__sim/faults", json={}).raise_for_status()
    second = _service(sim, pg_url, port, tmp_path / "second.log", worker=True).start()
    try:
        second.wait_ready()
        deadline = time.monotonic() + 60
        while (counts := asyncio.run(_counts(pg_url))) != {"DONE": len(accepted)}:
            assert time.monotonic() < deadline, (counts, second.tail_log())
            time.sleep(0.3)
    finally:
        assert second.stop(), second.tail_log()
    # The interrupted events were claimed again once their lease ran out, and applied then.
    assert asyncio.run(_max_attempts(pg_url)) == 2

    async def mirror_matches() -> None:
        app = sim.server.server.config.app
        ws = app.state.simulator.workspace(workspace_id)
        engine = create_engine(pg_url)
        try:
            async with create_session_factory(engine)() as s:
                rows = {r.id: r for r in (await s.execute(select(TimeEntry))).scalars()}
        finally:
            await engine.dispose()
        assert rows
        for entry_id, row in rows.items():
            sim_row = ws.entries.any_row_of(entry_id)
            assert (row.deleted_at is not None) == ws.entries.is_deleted(sim_row), entry_id
            if row.deleted_at is None:
                expected = render.time_entry(ws, sim_row)
                assert row.description == expected["description"]
                assert sorted(row.tag_ids) == sorted(expected["tagIds"])
                assert row.duration_seconds == parse_duration(expected["timeInterval"]["duration"])

    asyncio.run(mirror_matches())
