"""Stored error text never carries the SQL or the values of the statement that failed."""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from clockify_core.db.failures import describe_failure
from clockify_core.errors import BadRequest


async def test_a_database_error_is_described_without_sql_or_parameters(db_url: str) -> None:
    engine = create_async_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE guarded (id int PRIMARY KEY, note text CHECK (length(note) < 5))"))
        with pytest.raises(sa_exc.IntegrityError) as caught:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO guarded VALUES (1, :note)"), {"note": "secret-body-value"})
    finally:
        await engine.dispose()
    assert "secret-body-value" in str(caught.value)  # what used to be stored
    described = describe_failure(caught.value)
    assert "secret-body-value" not in described
    assert "INSERT" not in described
    assert "IntegrityError" in described
    assert "\n" not in described


def test_our_own_errors_keep_their_detail_and_everything_is_bounded() -> None:
    assert describe_failure(BadRequest("the id is not a Clockify id")) == "the id is not a Clockify id"
    assert len(describe_failure(ValueError("x" * 5000), limit=300)) == 300
