"""Pytest fixtures: PostgreSQL and Redis (real servers), migrated databases.

``TEST_DATABASE_URL`` and ``TEST_REDIS_URL`` point at the servers (defaults: 127.0.0.1).
A missing server skips the tests that need it, except under ``CI=true``, where it fails them.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from clockify_core.db.partitioning import partition_database
from clockify_core.testing.databases import (
    connection_shortage,
    create_database,
    create_migrated_database,
    create_migrated_sqlite,
    drop_database,
    postgres_reachable,
    test_database_url,
    test_redis_url,
)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Fail fast, with one line, when PostgreSQL has too few free connections for this run.

    Runs once: in the xdist controller (for all its workers) or in a plain run; not in workers."""
    config = session.config
    if hasattr(config, "workerinput"):
        return
    workers = config.getoption("numprocesses", None) if config.pluginmanager.hasplugin("xdist") else None
    count = workers if isinstance(workers, int) and workers > 0 else 1
    shortage = asyncio.run(connection_shortage(test_database_url(), count))
    if shortage:
        pytest.exit(shortage, returncode=2)


def _unavailable(what: str, reason: str) -> None:
    message = f"{what} is not reachable: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: required)", pytrace=False)
    pytest.skip(message)


async def _redis_reason(url: str) -> str | None:
    client = aioredis.from_url(url, socket_connect_timeout=3, retry=Retry(NoBackoff(), 0))
    try:
        await client.ping()
    except (OSError, aioredis.RedisError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        await client.aclose()
    return None


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    url = test_database_url()
    reason = asyncio.run(postgres_reachable(url))
    if reason:
        _unavailable("PostgreSQL", reason)
    return url


@pytest.fixture(scope="session")
def postgres_template(postgres_server_url: str) -> Iterator[str]:
    """A database migrated to head once per session; tests clone it."""
    name = f"cat_tmpl_{uuid.uuid4().hex[:12]}"
    url = asyncio.run(create_migrated_database(postgres_server_url, name))
    if partitions := int(os.environ.get("TEST_PG_PARTITIONS", "0")):
        # The suite on the hash-partitioned mirror (docs/scaling.md): TEST_PG_PARTITIONS=8 pytest ...
        asyncio.run(partition_database(url, partitions))
    yield name
    asyncio.run(drop_database(url))


@pytest.fixture
def pg_url(postgres_server_url: str, postgres_template: str) -> Iterator[str]:
    """A fresh PostgreSQL database at the current migration head."""
    url = asyncio.run(create_database(postgres_server_url, template=postgres_template))
    yield url
    asyncio.run(drop_database(url))


@pytest.fixture
def pg_empty_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database (for migration tests)."""
    url = asyncio.run(create_database(postgres_server_url))
    yield url
    asyncio.run(drop_database(url))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file at the current migration head."""
    return asyncio.run(create_migrated_sqlite(tmp_path / "test.db"))


@pytest.fixture(params=["postgres", "sqlite"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once on PostgreSQL and once on SQLite."""
    fixture = "pg_url" if request.param == "postgres" else "sqlite_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    url = test_redis_url()
    reason = asyncio.run(_redis_reason(url))
    if reason:
        _unavailable("Redis", reason)
    return url


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses, so tests share one Redis without colliding."""
    return f"test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def redis_client(redis_server_url: str, redis_prefix: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_server_url)
    yield client
    keys = [key async for key in client.scan_iter(match=redis_prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


# The Clockify simulator: ``simulator_config``, ``simulator`` (in-process) and ``simulator_server`` (loopback).
from clockify_core.simulator.testing import simulator, simulator_config, simulator_server  # noqa: E402

__all__ = ["simulator", "simulator_config", "simulator_server"]
