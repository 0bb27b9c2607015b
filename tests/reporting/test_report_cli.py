"""``clockify-addon report``: totals from the views, in table, csv and json, streamed from a server-side cursor."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from typer.testing import CliRunner, Result

from clockify_addon.cli import cli
from clockify_core.reporting.queries import ReportQuery, stream_rows
from tests.reporting.conftest import Mirror, in_shared_loop

pytestmark = pytest.mark.postgres

SINCE, UNTIL = datetime(2024, 9, 2, tzinfo=UTC), datetime(2025, 3, 3, tzinfo=UTC)
ARGS = ("--since", "2024-09-02", "--until", "2025-03-03")


async def invoke(db_url: str, *args: str) -> Result:
    # The command calls asyncio.run itself: give it a thread of its own.
    env = {"CLOCKIFY_DB_URL": db_url, "CLOCKIFY_LOG_LEVEL": "WARNING"}
    return await asyncio.to_thread(CliRunner().invoke, cli, ["report", *args], env=env)


@in_shared_loop
async def test_report_totals_equal_clockifys_summary_in_every_format(shared_mirror: Mirror) -> None:
    mirror, pg_url = shared_mirror, shared_mirror.db_url
    for by, group in (("project", "PROJECT"), ("client", "CLIENT"), ("user", "USER"), ("tag", "TAG")):
        result = await invoke(pg_url, *ARGS, "--by", by, "--format", "json")
        assert result.exit_code == 0, result.output
        rows = json.loads(result.stdout)
        for ws in mirror.workspaces:
            summary = await mirror.report(ws, "summary", SINCE, UNTIL, summaryFilter={"groups": [group]})
            expected = {g["_id"] or None: (g["duration"], round(g["amount"] / 100, 2), ws.currency)
                        for g in summary["groupOne"] if g["duration"]}
            got = {r["id"]: (r["duration_seconds"], r["amount"], r["currency"]) for r in rows if r["workspace_id"] == ws.id}
            assert got == expected, by

    ws = mirror.workspaces[1]
    result = await invoke(pg_url, *ARGS, "--by", "entry", "--format", "csv", "--workspace", ws.id)
    assert result.exit_code == 0, result.output
    entries = list(csv.DictReader(io.StringIO(result.stdout)))
    detailed = await mirror.report(ws, "detailed", SINCE, UNTIL, detailedFilter={"page": 1, "pageSize": 1})
    [totals] = detailed["totals"]
    assert len(entries) == totals["entriesCount"]  # no running timer lies in this range
    assert sum(int(e["duration_seconds"]) for e in entries) == totals["totalTime"]
    assert {e["currency"] for e in entries} == {ws.currency}
    assert all(e["user_name"] for e in entries)

    table = await invoke(pg_url, *ARGS, "--by", "client")
    assert table.exit_code == 0, table.output
    assert "workspace_id" in table.stdout
    assert mirror.workspaces[0].id in table.stdout


@in_shared_loop
async def test_exports_stream_from_a_server_side_cursor(shared_mirror: Mirror) -> None:
    """After the first row, the query is still an open portal on the server: the rest was not fetched."""
    mirror = shared_mirror
    query = ReportQuery(since=SINCE, until=UNTIL, by="entry")
    async with mirror.addon.runtime.engine.connect() as conn:
        rows = stream_rows(conn, query, batch=50)
        first = await anext(rows)
        assert first["id"]
        open_portals = (await conn.execute(
            text("SELECT statement FROM pg_cursors WHERE name <> ''"))).scalars().all()
        assert any("reporting.time_entries" in statement for statement in open_portals), open_portals
        rest = [row async for row in rows]
    assert len(rest) + 1 == sum(len(ws.entries) - len(ws.entries.running) for ws in mirror.workspaces
                                ) - await _outside(mirror)


async def _outside(mirror: Mirror) -> int:
    [row] = await mirror.rows("SELECT count(*) AS n FROM reporting.time_entries WHERE NOT is_running "
                              "AND (start_at < :since OR start_at >= :until)", since=SINCE, until=UNTIL)
    return int(row["n"])


async def test_bad_input_is_refused_with_a_reason(pg_url: str, sqlite_url: str) -> None:
    bad = await invoke(pg_url, *ARGS, "--by", "week")
    assert bad.exit_code == 2
    assert "--by must be one of project, client, user, tag, entry" in _flat(bad.output)
    backwards = await invoke(pg_url, "--since", "2025-03-03", "--until", "2024-09-02")
    assert backwards.exit_code == 2
    assert "--until must be after --since" in _flat(backwards.output)
    sqlite = await invoke(sqlite_url, *ARGS)
    assert sqlite.exit_code == 2
    assert "report needs PostgreSQL" in _flat(sqlite.output)


def _flat(output: str) -> str:
    """Typer's error box, as one line of text (rich wraps and frames it)."""
    return " ".join(output.replace("│", " ").replace("╭", " ").replace("╰", " ").split())
