"""The `reporting` views' totals equal Clockify's own reports (the simulator's) for the same range.

Durations to the second, amounts to the cent, per workspace (two currencies), in total and
per project, client, user and tag, through the daily, weekly and monthly rollups.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from clockify_core.simulator.model import Workspace
from tests.reporting.conftest import Mirror, in_shared_loop

pytestmark = pytest.mark.postgres

GROUPS = {"PROJECT": "project", "CLIENT": "client", "USER": "user", "TAG": "tag"}
# (rollup view, range) pairs whose range is made of whole periods of that view (2024-09-02 is a Monday).
RANGES = [
    ("daily", datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC)),  # all history and the running timers
    ("weekly", datetime(2024, 9, 2, tzinfo=UTC), datetime(2025, 3, 3, tzinfo=UTC)),
    ("monthly", datetime(2024, 10, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)),
]


async def _view_totals(mirror: Mirror, ws: Workspace, since: datetime, until: datetime) -> dict[str, Any]:
    [row] = await mirror.rows(
        """SELECT count(*) AS entries, COALESCE(sum(duration_seconds), 0) AS seconds,
                  COALESCE(sum(duration_seconds) FILTER (WHERE billable), 0) AS billable_seconds,
                  COALESCE(sum(amount_cents), 0) AS cents, array_agg(DISTINCT currency) AS currencies
             FROM reporting.time_entries WHERE workspace_id = :ws AND start_at >= :since AND start_at < :until""",
        ws=ws.id, since=since, until=until)
    return row


async def _assert_totals_match(mirror: Mirror, ws: Workspace, since: datetime, until: datetime) -> int:
    detailed = await mirror.report(ws, "detailed", since, until, detailedFilter={"page": 1, "pageSize": 1})
    [totals] = detailed["totals"]
    view = await _view_totals(mirror, ws, since, until)
    assert (view["entries"], view["seconds"], view["billable_seconds"], view["cents"]) == (
        totals["entriesCount"], totals["totalTime"], totals["totalBillableTime"], totals["totalAmount"])
    assert totals["amounts"] == [{"type": "EARNED", "value": totals["totalAmount"]}]
    assert view["currencies"] == [ws.currency]
    return int(totals["totalAmount"])


@in_shared_loop
async def test_view_totals_equal_the_simulators_reports(shared_mirror: Mirror) -> None:
    mirror = shared_mirror
    assert len({ws.currency for ws in mirror.workspaces}) == 2
    for ws in mirror.workspaces:
        assert len(ws.users) >= 6
        assert len(ws.projects) >= 8
        for rollup, since, until in RANGES:
            amount = await _assert_totals_match(mirror, ws, since, until)
            assert amount > 0
            for group, dimension in GROUPS.items():
                summary = await mirror.report(ws, "summary", since, until, summaryFilter={"groups": [group]})
                # Running timers add no time: a group holding only one is no row of the rollups.
                expected = {g["_id"] or None: (g["duration"], g["amount"], g["name"])
                            for g in summary["groupOne"] if g["duration"]}
                rows = await mirror.rows(
                    f"""SELECT key_id, sum(duration_seconds) AS seconds, sum(amount_cents) AS cents,
                               max(key_name) AS name, array_agg(DISTINCT currency) AS currencies
                          FROM reporting.{rollup}
                         WHERE workspace_id = :ws AND dimension = :dimension
                           AND period_start >= :since AND period_start < :until
                         GROUP BY key_id""",  # noqa: S608 - names from the constants above
                    ws=ws.id, dimension=dimension, since=since.date(), until=until.date())
                got = {r["key_id"]: (r["seconds"], r["cents"], r["name"]) for r in rows}
                assert {k: v[:2] for k, v in got.items()} == {k: v[:2] for k, v in expected.items()}, (rollup, group)
                assert {k: v[2] for k, v in got.items() if k} == {k: v[2] for k, v in expected.items() if k}
                assert {c for r in rows for c in r["currencies"]} == {ws.currency}


async def test_rate_precedence_matches_clockifys_without_the_entries_own_rate(mirror: Mirror) -> None:
    """With no rate stored on the entries, the views' precedence must reach the rates Clockify applied."""
    sources = await mirror.rows("SELECT DISTINCT rate_source FROM reporting.time_entries WHERE billable")
    assert {r["rate_source"] for r in sources} == {"time_entry"}
    await mirror.execute("UPDATE time_entries SET hourly_rate = NULL, currency = NULL")
    since, until = RANGES[0][1], RANGES[0][2]
    for ws in mirror.workspaces:
        await _assert_totals_match(mirror, ws, since, until)
    sources = await mirror.rows("SELECT DISTINCT rate_source FROM reporting.time_entries WHERE billable")
    assert {r["rate_source"] for r in sources} == {"task", "project_member", "project", "workspace_member", "workspace"}


async def test_running_timers_are_listed_and_deleted_entries_left_out(mirror: Mirror) -> None:
    ws = mirror.workspaces[0]
    running = await mirror.rows("SELECT id, user_name, running_seconds FROM reporting.running_timers WHERE workspace_id = :ws",
                                ws=ws.id)
    store = ws.entries
    assert {r["id"] for r in running} == {store.id_of(row) for row in store.running.values()}
    assert all(r["user_name"] and r["running_seconds"] > 0 for r in running)

    finished = [row for row in store.by_start.rows if store.duration[row] > 0 and store.is_billable(row)]
    gone = store.id_of(finished[len(finished) // 2])
    owner = mirror.sim.owner_client(ws)
    assert (await owner.delete(f"/api/v1/workspaces/{ws.id}/time-entries/{gone}")).status_code == 204
    await mirror.sim.drain()
    await mirror.addon.process()
    [tombstone] = await mirror.rows("SELECT deleted_at FROM time_entries WHERE id = :id", id=gone)
    assert tombstone["deleted_at"] is not None
    assert not await mirror.rows("SELECT id FROM reporting.time_entries WHERE id = :id", id=gone)
    counts: dict[str, int] = defaultdict(int)
    for r in await mirror.rows("SELECT workspace_id, count(*) AS n FROM reporting.time_entries GROUP BY 1"):
        counts[r["workspace_id"]] = r["n"]
    assert counts == {w.id: len(w.entries) for w in mirror.workspaces}
    await _assert_totals_match(mirror, ws, RANGES[0][1], RANGES[0][2])


@in_shared_loop
async def test_the_documented_read_only_role_reads_the_views_and_nothing_else(shared_mirror: Mirror) -> None:
    """The SQL of docs/reporting.md#connecting-bi-tools, run as written (role and database renamed)."""
    mirror = shared_mirror
    doc = (Path(__file__).parents[2] / "docs" / "reporting.md").read_text()
    block = doc.split("CREATE ROLE reporting_reader", 1)[1].split("```", 1)[0]
    role = f"reader_{uuid.uuid4().hex[:10]}"
    url = make_url(str(mirror.addon.runtime.engine.url))
    database = url.database
    statements = [s.strip() for s in ("CREATE ROLE reporting_reader" + block).split(";") if s.strip()]
    sql = [s.replace("reporting_reader", role).replace("clockify_addon", f'"{database}"') for s in statements]
    assert len(sql) == 7
    try:
        for statement in sql:
            await mirror.execute(statement)
        reader = create_async_engine(url.set(username=role, password="change-me"))
        try:
            async with reader.connect() as conn:
                rows = (await conn.execute(text("SELECT count(*) FROM reporting.weekly"))).scalar_one()
                assert rows > 0
                with pytest.raises(DBAPIError, match="permission denied"):
                    await conn.execute(text("SELECT count(*) FROM installations"))
            async with reader.connect() as conn:
                with pytest.raises(DBAPIError, match="read-only transaction"):
                    await conn.execute(text("CREATE TABLE reporting.x (id int)"))
        finally:
            await reader.dispose()
    finally:
        await mirror.execute(f'DROP OWNED BY "{role}"')
        await mirror.execute(f'DROP ROLE "{role}"')
