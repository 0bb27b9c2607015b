"""The one Alembic history: upgrade from empty, match the models, downgrade cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect

from clockify_core.db import create_engine
from clockify_core.db.migrate import current_revision, downgrade, head_revision, is_at_head, upgrade
from clockify_core.models import metadata


@pytest.fixture(params=["postgres", "sqlite"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_empty_url"))
    return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"


def _diff(sync_conn: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(sync_conn, opts={"compare_type": True}), metadata))


def _tables(sync_conn: Connection) -> set[str]:
    return set(inspect(sync_conn).get_table_names()) - {"alembic_version"}


async def test_upgrade_from_empty_matches_models_and_downgrades_to_nothing(empty_url: str) -> None:
    engine = create_engine(empty_url)
    try:
        assert not await is_at_head(engine)
        await upgrade(engine)
        assert await is_at_head(engine)
        async with engine.connect() as conn:
            assert await current_revision(conn) == head_revision()
            assert await conn.run_sync(_tables) == set(metadata.tables)
            assert await conn.run_sync(_diff) == []

        await upgrade(engine)  # idempotent at head

        await downgrade(engine, "base")
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == set()
            assert await current_revision(conn) is None
    finally:
        await engine.dispose()


async def test_each_step_downgrades_and_upgrades_again(empty_url: str) -> None:
    engine = create_engine(empty_url)
    try:
        await upgrade(engine)
        await downgrade(engine, "-1")
        async with engine.connect() as conn:
            assert await current_revision(conn) != head_revision()
        await upgrade(engine)
        assert await is_at_head(engine)
    finally:
        await engine.dispose()
