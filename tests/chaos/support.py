"""Helpers of the chaos tests: a real service subprocess, the simulator on a loopback port, and a
TCP proxy in front of PostgreSQL or Redis that a test cuts and restores (the shared servers
keep running for everyone else)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from clockify_core.db import create_engine, create_session_factory
from clockify_core.security.crypto import TokenCipher
from clockify_core.simulator.state import Simulator
from clockify_core.simulator.testing import ServedSimulator
from clockify_core.testing.processes import ServiceProcess, free_port
from clockify_core.testing.proxy import TcpProxy

ENCRYPTION_KEY = "chaos-tests-encryption-key-0123456789abcdef"


def sim_state(sim: ServedSimulator) -> Simulator:
    """The state of a simulator served in this process, to read the truth from."""
    state: Simulator = sim.server.server.config.app.state.simulator
    return state


def compare_mirror(db_url: str, sim: ServedSimulator, workspace_id: str) -> dict[str, int]:
    """Assert every typed mirror table equals the simulator's data; the row count per kind."""
    from tests.sync.conftest import KEY_COLUMNS, assert_same, expected, mirrored

    ws = sim_state(sim).workspace(workspace_id)

    async def run() -> dict[str, int]:
        engine = create_engine(db_url)
        counts: dict[str, int] = {}
        try:
            async with create_session_factory(engine)() as s:
                for kind in KEY_COLUMNS:
                    mirror, truth = await mirrored(s, workspace_id, kind), expected(ws, kind)
                    assert_same(kind, mirror, truth)
                    counts[kind] = len(mirror)
        finally:
            await engine.dispose()
        return counts

    return asyncio.run(run())


class ThreadedProxy:
    """A :class:`TcpProxy` on its own event loop thread, so blocking test code can drive it."""

    def __init__(self, host: str, port: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="chaos-proxy", daemon=True)
        self._thread.start()
        self.proxy = TcpProxy(host, port)
        self._call(self.proxy.start())

    @property
    def port(self) -> int:
        return self.proxy.port

    def _call(self, coro: Any) -> None:
        future: Future[None] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        future.result(timeout=10)

    def cut(self) -> None:
        self._call(self.proxy.cut())

    def restore(self) -> None:
        self._call(self.proxy.restore())

    def close(self) -> None:
        self._call(self.proxy.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


def report(request: pytest.FixtureRequest, name: str, line: str) -> None:
    """Keep a measured figure with the test's report; conftest prints them after the run
    (docs/reliability.md quotes them)."""
    request.node.user_properties.append((name, line))


class Db:
    """Blocking reads of the real server (not through any proxy), for setup and assertions."""

    def __init__(self, url: str) -> None:
        self.url = url

    def rows(self, sql: str, **params: Any) -> list[Any]:
        async def run() -> list[Any]:
            engine = create_engine(self.url)
            try:
                async with engine.connect() as conn:
                    return list((await conn.execute(text(sql), params)).all())
            finally:
                await engine.dispose()

        return asyncio.run(run())


def service(sim: ServedSimulator, db_url: str, log: Path, **env: str) -> ServiceProcess:
    port = free_port()
    base = {
        "CLOCKIFY_DB_URL": db_url,
        "CLOCKIFY_BASE_URL": f"http://127.0.0.1:{port}",
        "CLOCKIFY_PUBLIC_KEY": sim.public_key_pem,
        "CLOCKIFY_ALLOWED_API_HOSTS": httpx.URL(sim.base_url).netloc.decode(),
        "CLOCKIFY_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "CLOCKIFY_WORKER__POLL_INTERVAL": "0.2",
        "CLOCKIFY_MIRROR__REFETCH": "never",
        "LOG_FORMAT": "json",
    }
    return ServiceProcess("clockify_addon.main:app", env={**base, **env}, port=port, log_path=log)


def wait_until(check: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def install(sim: ServedSimulator, proc: ServiceProcess, db: Db) -> dict[str, Any]:
    """Install through the simulator and wait for the runtime webhook registration job."""
    installed: dict[str, Any] = sim.control.post("/__sim/install", json={"addonUrl": proc.url}).raise_for_status().json()

    def registered() -> bool:
        return {row.status for row in db.rows("SELECT status FROM jobs WHERE kind = 'register_webhooks'")} == {"DONE"}

    wait_until(registered, timeout=30, what="webhook registration")
    return installed


def webhook_token(db: Db, event: str) -> tuple[str, str]:
    """(path, token) of the active subscription of ``event``, decrypted as the service would."""
    [row] = db.rows("SELECT path, token_encrypted FROM webhook_subscriptions WHERE event_type = :e AND status = 'ACTIVE'",
                    e=event)
    return row.path, TokenCipher(ENCRYPTION_KEY).decrypt(row.token_encrypted)
