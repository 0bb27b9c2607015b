"""A wake-up registered with ``after_commit`` follows the commit, and a rollback drops it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import clockify_addon.app
import clockify_addon.settings
from clockify_core.db import create_engine, create_session_factory
from clockify_core.db.after_commit import after_commit
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import installed_addon

INSERT = text("INSERT INTO queued_work (note) VALUES ('work')")


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE queued_work (note text)"))
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


async def _rows(engine: AsyncEngine) -> int:
    """What another connection (a worker) sees."""
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM queued_work")) or 0)


async def test_the_woken_worker_finds_the_committed_row(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    wakeup = asyncio.Event()
    seen: list[int] = []

    async def worker() -> None:
        await wakeup.wait()
        seen.append(await _rows(engine))

    task = asyncio.create_task(worker())
    async with sessions.begin() as session:
        await session.execute(INSERT)
        after_commit(session, wakeup.set)
        await asyncio.sleep(0.05)  # a worker woken now would look before the commit
        assert not wakeup.is_set()
        assert await _rows(engine) == 0
    assert wakeup.is_set()
    await asyncio.wait_for(task, 10)
    assert seen == [1]


async def _queue_then_fail(sessions: async_sessionmaker[AsyncSession], calls: list[str]) -> None:
    async with sessions.begin() as session:
        await session.execute(INSERT)
        after_commit(session, lambda: calls.append("woken"))
        raise RuntimeError("the handler failed")


async def _failing_savepoint(session: AsyncSession) -> None:
    async with session.begin_nested():
        await session.execute(INSERT)
        raise RuntimeError("one workspace failed")


async def test_a_rollback_drops_the_wake_up(sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine) -> None:
    calls: list[str] = []
    with pytest.raises(RuntimeError):
        await _queue_then_fail(sessions, calls)
    assert calls == []
    # Nor does the next transaction of the same session run it.
    async with sessions() as session:
        await session.execute(INSERT)
        after_commit(session, lambda: calls.append("rolled back"))
        await session.rollback()
        await session.execute(INSERT)
        after_commit(session, lambda: calls.append("committed"))
        await session.commit()
    assert calls == ["committed"]
    assert await _rows(engine) == 1


async def test_a_savepoint_neither_runs_nor_drops_it(sessions: async_sessionmaker[AsyncSession]) -> None:
    calls: list[str] = []
    async with sessions.begin() as session:
        await session.execute(INSERT)
        after_commit(session, lambda: calls.append("outer"))
        async with session.begin_nested():
            await session.execute(INSERT)
        assert calls == []
        with pytest.raises(RuntimeError):
            await _failing_savepoint(session)
        assert calls == []
    assert calls == ["outer"]


async def test_without_a_transaction_it_runs_at_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    calls: list[str] = []
    async with sessions() as session:
        after_commit(session, lambda: calls.append("now"))
    assert calls == ["now"]


KEY = "operator-key-for-tests-0123456789"
# PostgreSQL runs a deferred constraint trigger at COMMIT: this one makes each commit that
# queued a job take half a second, so a worker woken before the commit looks inside it.
SLOW_COMMIT = [
    "CREATE FUNCTION test_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN PERFORM pg_sleep(0.5); RETURN NULL; END $$",
    "CREATE CONSTRAINT TRIGGER test_slow_commit AFTER INSERT ON jobs DEFERRABLE INITIALLY DEFERRED "
    "FOR EACH ROW EXECUTE FUNCTION test_slow_commit()",
]


async def test_an_operator_request_wakes_the_job_worker_after_its_commit(
    simulator: InProcessSimulator, pg_url: str
) -> None:
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url,
        security={"operator_api_key": KEY},
    ) as addon:
        await addon.process()
        runtime = addon.runtime
        async with runtime.engine.begin() as conn:
            for statement in SLOW_COMMIT:
                await conn.execute(text(statement))
        runtime.jobs_wakeup.clear()
        seen: list[int] = []

        async def worker() -> None:
            await runtime.jobs_wakeup.wait()
            async with runtime.engine.connect() as conn:
                seen.append(int(await conn.scalar(text("SELECT count(*) FROM jobs WHERE status = 'QUEUED'")) or 0))

        task = asyncio.create_task(worker())
        r = await addon.client.post(f"/api/operator/workspaces/{addon.workspace_id}/sync", headers={"X-API-Key": KEY})
        assert r.status_code == 202
        await asyncio.wait_for(task, 10)
        assert seen == [1]
