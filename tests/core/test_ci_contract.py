"""Without PostgreSQL or Redis, tests that need them skip locally and fail under CI=true."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = '''
async def test_needs_postgres(pg_url):
    pass

async def test_needs_redis(redis_client):
    pass
'''


@pytest.mark.parametrize(("ci", "expected"), [("true", "2 errors"), ("", "2 skipped")])
def test_missing_services_fail_only_under_ci(tmp_path: Path, ci: str, expected: str) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["clockify_core.testing.plugin"]\n')
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {
        **os.environ,
        "CI": ci,
        "TEST_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:1/postgres",
        "TEST_REDIS_URL": "redis://127.0.0.1:1/0",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto",
         "-o", "asyncio_default_fixture_loop_scope=function", str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False,
    )
    assert expected in result.stdout, result.stdout[-2000:]
    if ci:
        assert "CI=true: required" in result.stdout
