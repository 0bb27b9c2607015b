"""The `report` command's queries over the `reporting` views (PostgreSQL only).

Grouped reports read ``reporting.time_entries`` (``reporting.time_entry_tags`` by tag) over
``[since, until)`` in UTC, finished entries only, one row per workspace, currency and group;
``--by entry`` lists the entries themselves. Amounts are in the workspace's currency.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

GROUPS: dict[str, tuple[str, str, str]] = {  # --by -> (view, key column, name column)
    "project": ("reporting.time_entries", "project_id", "project_name"),
    "client": ("reporting.time_entries", "client_id", "client_name"),
    "user": ("reporting.time_entries", "user_id", "user_name"),
    "tag": ("reporting.time_entry_tags", "tag_id", "tag_name"),
}
BY = (*GROUPS, "entry")

GROUP_COLUMNS = ("workspace_id", "currency", "id", "name", "entries", "duration_seconds", "hours",
                 "billable_seconds", "billable_hours", "amount")
ENTRY_COLUMNS = ("workspace_id", "id", "start_at", "end_at", "duration_seconds", "hours", "user_name", "project_name",
                 "client_name", "task_name", "tag_names", "description", "billable", "hourly_rate", "rate_source",
                 "currency", "amount")


@dataclass(frozen=True)
class ReportQuery:
    since: datetime
    until: datetime
    by: str
    workspace_id: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return ENTRY_COLUMNS if self.by == "entry" else GROUP_COLUMNS

    def sql(self) -> str:
        where = "NOT is_running AND start_at >= :since AND start_at < :until"
        if self.workspace_id:
            where += " AND workspace_id = :workspace_id"
        if self.by == "entry":
            # Constant SQL: column and view names come from this module, values are bound parameters.
            return (f"SELECT {', '.join(ENTRY_COLUMNS)} FROM reporting.time_entries WHERE {where} "  # noqa: S608
                    "ORDER BY workspace_id, start_at, id")
        view, key, name = GROUPS[self.by]
        return f"""
            SELECT workspace_id, currency, {key} AS id, max({name}) AS name, count(*) AS entries,
                   sum(duration_seconds) AS duration_seconds, round(sum(duration_seconds) / 3600.0, 2) AS hours,
                   sum(CASE WHEN billable THEN duration_seconds ELSE 0 END) AS billable_seconds,
                   round(sum(CASE WHEN billable THEN duration_seconds ELSE 0 END) / 3600.0, 2) AS billable_hours,
                   round(sum(amount_cents) / 100.0, 2) AS amount
              FROM {view} WHERE {where}
             GROUP BY workspace_id, currency, {key}
             ORDER BY workspace_id, currency, duration_seconds DESC, name, id"""  # noqa: S608

    def params(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "workspace_id": self.workspace_id}


async def stream_rows(conn: AsyncConnection, query: ReportQuery, *, batch: int = 1000) -> AsyncIterator[dict[str, Any]]:
    """The report's rows, fetched ``batch`` at a time through a server-side cursor (never all at once)."""
    result = await conn.stream(text(query.sql()).execution_options(yield_per=batch), query.params())
    try:
        async for row in result.mappings():
            yield dict(row)
    finally:
        await result.close()
