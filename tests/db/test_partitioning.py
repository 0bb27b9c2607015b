"""The mirror hash-partitioned by workspace_id (docs/scaling.md): same schema names, same results.

The whole PostgreSQL suite can run on the partitioned mirror too: ``TEST_PG_PARTITIONS=8``
partitions the session's template database (clockify_core/testing/plugin.py).
"""

from __future__ import annotations

import os

from sqlalchemy import func, select, text

import clockify_addon.app
import clockify_addon.settings
from clockify_core.db import create_engine
from clockify_core.db.partitioning import (
    PARTITIONED_TABLES,
    is_partitioned,
    partition_by_workspace,
    partition_database,
)
from clockify_core.mirror.models import TimeEntry
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import installed_addon
from tests.sync.conftest import KEY_COLUMNS, SYNC, assert_raw_match, assert_same, expected, mirrored

SCHEMA = """
SELECT c.relname, i.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
WHERE c.relname = ANY(:tables) ORDER BY 1, 2
"""


async def names(url: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            indexes = [tuple(r) for r in await conn.execute(text(SCHEMA), {"tables": list(PARTITIONED_TABLES)})]
            constraints = [tuple(r) for r in await conn.execute(text(
                "SELECT conrelid::regclass::text, conname FROM pg_constraint "
                "WHERE conrelid::regclass::text = ANY(:tables) ORDER BY 1, 2"), {"tables": list(PARTITIONED_TABLES)})]
        return indexes, constraints  # type: ignore[return-value]
    finally:
        await engine.dispose()


async def test_partitioning_keeps_every_name_and_is_idempotent(pg_url: str) -> None:
    already = int(os.environ.get("TEST_PG_PARTITIONS", "0"))  # the template may be partitioned already
    before = await names(pg_url)
    assert await partition_database(pg_url, 4) == ([] if already else list(PARTITIONED_TABLES))
    assert await names(pg_url) == before  # Alembic and the models see the same schema
    engine = create_engine(pg_url)
    try:
        async with engine.begin() as conn:
            assert all([await is_partitioned(conn, t) for t in PARTITIONED_TABLES])
            parts = await conn.scalar(text("SELECT count(*) FROM pg_inherits WHERE inhparent = 'time_entries'::regclass"))
            assert parts == (already or 4)
            assert await partition_by_workspace(conn, "time_entries", 4) is False
    finally:
        await engine.dispose()


async def test_bootstrap_and_webhooks_mirror_exactly_into_a_partitioned_mirror(
    simulator: InProcessSimulator, pg_url: str,
) -> None:
    await partition_database(pg_url, 8)
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url, sync=SYNC,
    ) as addon:
        await addon.process()
        ws = simulator.sim.workspace(addon.workspace_id)
        await simulator.sim.traffic.run(100, 0.5, workspace_id=ws.id)
        await simulator.drain()
        await addon.process()
        async with addon.runtime.sessions() as s:
            for kind in KEY_COLUMNS:
                assert_same(kind, await mirrored(s, ws.id, kind), expected(ws, kind))
            await assert_raw_match(s, ws)
            total = await s.scalar(select(func.count()).select_from(TimeEntry))
            # Every row of the workspace lives in the one partition its workspace_id hashes to.
            spread = (await s.execute(text(
                "SELECT tableoid::regclass::text, count(*) FROM time_entries GROUP BY 1"))).all()
        assert [n for _, n in spread] == [total]
        assert spread[0][0].startswith("time_entries_p")
