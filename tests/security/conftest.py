"""The security suite's world: the three services, each installed on two workspaces of one simulator.

Workspace A holds data an attacker wants (flows with runs and a secret header, a custom
source, explorer history, inbox events); workspace B is the attacker's own installation of
the same add-on. Built once per session (``stack``): installing six add-ons costs seconds,
and the tests only read A's state or act as B. Tests that must not disturb others build
their own (tests/security/test_fuzz.py). Plain helpers live in tests/security/support.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack

import pytest
import pytest_asyncio

from clockify_core.simulator.testing import in_process_simulator
from clockify_core.testing.databases import create_database, drop_database
from tests.security.support import (
    SERVICES,
    Recorder,
    Stack,
    build_service,
    populate_tenant,
    tiny_config,
)


@pytest.fixture(scope="session")
def recorder() -> Iterator[Recorder]:
    """An HTTP server on 127.0.0.1 that flows may call (allowlisted for it alone)."""
    with Recorder.serve(echo_all=True) as server:
        yield server


@pytest.fixture(scope="session")
def canary() -> Iterator[Recorder]:
    """An HTTP server on 127.0.0.1 that nothing may ever reach (not allowlisted)."""
    with Recorder.serve(echo_all=True) as server:
        yield server


@pytest.fixture(scope="session")
def security_databases(postgres_server_url: str, postgres_template: str) -> Iterator[dict[str, str]]:
    urls = {name: asyncio.run(create_database(postgres_server_url, template=postgres_template)) for name in SERVICES}
    yield urls
    for url in urls.values():
        asyncio.run(drop_database(url))


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stack(security_databases: dict[str, str], recorder: Recorder) -> AsyncIterator[Stack]:
    async with AsyncExitStack() as exits:
        sim = await exits.enter_async_context(in_process_simulator(tiny_config()))
        services = {}
        for name in SERVICES:
            services[name] = await build_service(exits, sim, name, security_databases[name], recorder)
        world = Stack(sim, services, recorder)
        for service in services.values():
            await populate_tenant(world, service)
        yield world
