"""ops/grafana/clockify-time-tracking.json: every query runs against the `reporting` views and returns rows.

Grafana expands its macros before PostgreSQL sees a query; the test does the same, as
Grafana's PostgreSQL data source does: ``$__timeFilter(expr)`` becomes
``expr BETWEEN '<from>' AND '<to>'``, ``$__timeFrom()``/``$__timeTo()`` the bounds, and the
multi-value ``$workspace`` a comma-separated list of quoted ids (every mirrored workspace).
A macro the test does not know fails the test rather than reaching PostgreSQL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from tests.ops.support import ROOT
from tests.reporting.conftest import Mirror, in_shared_loop

pytestmark = pytest.mark.postgres

DASHBOARD = ROOT / "ops" / "grafana" / "clockify-time-tracking.json"
DATASOURCES = ROOT / "ops" / "grafana" / "provisioning" / "datasources" / "clockify.yml"
# The simulator's history (anchored on 2025-06-02) lies in this range.
FROM, TO = datetime(2024, 6, 1, tzinfo=UTC), datetime(2025, 6, 3, tzinfo=UTC)


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def queries(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in board["panels"]:
        for target in panel["targets"]:
            yield panel["title"], target["rawSql"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            yield f"${variable['name']}", variable["query"]


def expand(sql: str, workspaces: list[str], since: datetime = FROM, until: datetime = TO) -> str:
    """The query as Grafana sends it."""
    moment = "'{}'".format
    sql = re.sub(r"\$__timeFilter\(([^()]*(?:\([^()]*\))?[^()]*)\)",
                 lambda m: f"{m.group(1)} BETWEEN {moment(since.isoformat())} AND {moment(until.isoformat())}", sql)
    sql = sql.replace("$__timeFrom()", moment(since.isoformat())).replace("$__timeTo()", moment(until.isoformat()))
    sql = sql.replace("$workspace", ", ".join(f"'{w}'" for w in workspaces))
    assert "$" not in sql, f"a macro or variable the test does not expand: {sql}"
    return sql


def test_the_macros_expand_as_grafana_does() -> None:
    got = expand("SELECT 1 WHERE $__timeFilter(period_start::timestamptz) AND workspace_id IN ($workspace)", ["a", "b"],
                 datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC))
    assert got == ("SELECT 1 WHERE period_start::timestamptz BETWEEN '2025-01-01T00:00:00+00:00' AND "
                   "'2025-02-01T00:00:00+00:00' AND workspace_id IN ('a', 'b')")
    with pytest.raises(AssertionError):
        expand("SELECT $__timeGroup(start_at, '1d')", ["a"])


def test_the_dashboard_reads_the_provisioned_mirror_data_source() -> None:
    board = dashboard()
    [source] = [d for d in yaml.safe_load(DATASOURCES.read_text())["datasources"] if d["uid"] == "clockify-mirror"]
    assert source["type"] == "grafana-postgresql-datasource"
    wanted = {"type": source["type"], "uid": source["uid"]}
    for panel in board["panels"]:
        assert panel["datasource"] == wanted, panel["title"]
        assert all(t["datasource"] == wanted for t in panel["targets"]), panel["title"]
    titles = {p["title"] for p in board["panels"]}
    assert {"Hours per week by project", "Hours per week by client", "Hours per week by user", "Billable share",
            "Top tags", "Running timers"} <= titles


@in_shared_loop
async def test_every_query_runs_against_the_views(shared_mirror: Mirror) -> None:
    mirror = shared_mirror
    workspaces = [ws.id for ws in mirror.workspaces]
    checked = 0
    for where, sql in queries(dashboard()):
        rows = await mirror.rows(expand(sql, workspaces))
        assert rows, f"{where}: no rows"
        assert any(v is not None for v in rows[0].values()), f"{where}: {rows[0]}"
        checked += 1
    assert checked == len(dashboard()["panels"]) + 1
