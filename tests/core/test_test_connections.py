"""The suite's PostgreSQL connection use is bounded, and a server with too few free
connections stops the run at once with one line (README.md, "Tests and PostgreSQL connections")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import clockify_addon.app
import clockify_addon.settings
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import installed_addon
from clockify_core.testing.databases import (
    CONNECTIONS_PER_WORKER,
    TEST_MAX_OVERFLOW,
    TEST_POOL_SIZE,
    connection_shortage,
)
from clockify_core.testing.processes import ServiceProcess

PROBE = '''
def test_needs_postgres(pg_url):
    pass
'''


def run_probe(tmp_path: Path, per_worker: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["clockify_core.testing.plugin"]\n')
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {**os.environ, "TEST_DB_CONNECTIONS_PER_WORKER": per_worker}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto",
         "-o", "asyncio_default_fixture_loop_scope=function", *args, str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False,
    )


@pytest.mark.postgres
@pytest.mark.parametrize(("args", "workers"), [(("-p", "no:xdist"), 1), (("-n", "2"), 2)])
def test_too_few_free_connections_stop_the_run_with_one_line(
    postgres_server_url: str, tmp_path: Path, args: tuple[str, ...], workers: int,
) -> None:
    result = run_probe(tmp_path, "100000", *args)
    assert result.returncode == 2, result.stdout[-2000:]
    assert "passed" not in result.stdout
    assert "error" not in result.stdout.lower().replace("errors", "")  # no per-test errors: one stop
    lines = [line for line in result.stdout.splitlines() if "free connections" in line]
    assert lines, result.stdout[-2000:]
    assert f"this run needs {100000 * workers} (100000 per pytest worker x {workers})" in lines[0]
    assert "max_connections=" in lines[0]
    assert "-n 1" in lines[0]


@pytest.mark.postgres
def test_enough_free_connections_let_the_run_go_on(postgres_server_url: str, tmp_path: Path) -> None:
    result = run_probe(tmp_path, "1", "-p", "no:xdist")
    assert result.returncode == 0, result.stdout[-2000:]
    assert "1 passed" in result.stdout


@pytest.mark.postgres
async def test_the_shortage_line_counts_the_server(postgres_server_url: str) -> None:
    line = await connection_shortage(postgres_server_url, 10**6)
    assert line is not None
    assert line.startswith("PostgreSQL at postgresql+asyncpg://")
    assert "\n" not in line


async def test_test_apps_use_the_small_pool(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings,
                               db_url=pg_url) as addon:
        pool = addon.runtime.engine.pool
        assert pool.size() == TEST_POOL_SIZE  # type: ignore[attr-defined]
        assert pool._max_overflow == TEST_MAX_OVERFLOW  # type: ignore[attr-defined]
    process = ServiceProcess("clockify_addon.main:app", env={})
    assert process.env["CLOCKIFY_DATABASE__POOL_SIZE"] == str(TEST_POOL_SIZE)
    assert process.env["CLOCKIFY_DATABASE__MAX_OVERFLOW"] == str(TEST_MAX_OVERFLOW)
    # A test that needs more still says so.
    assert ServiceProcess("api_studio.main:app", env={"API_STUDIO_DATABASE__POOL_SIZE": "12"}).env[
        "API_STUDIO_DATABASE__POOL_SIZE"] == "12"
    assert TEST_POOL_SIZE + TEST_MAX_OVERFLOW <= CONNECTIONS_PER_WORKER // 3
