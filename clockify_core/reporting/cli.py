"""``<service> report``: hours and amounts from the mirror's `reporting` views.

``--format table`` is for a terminal (it holds the rows to size the columns); ``csv`` and
``json`` write each row as it arrives from a server-side cursor, so exporting every entry of
a large mirror (``--by entry``) uses constant memory.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TextIO

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from clockify_core.config import ServiceSettings
from clockify_core.db import create_engine, is_postgres
from clockify_core.errors import BadRequest
from clockify_core.reporting.queries import BY, ReportQuery, stream_rows
from clockify_core.sync.cli import DATE_FORMATS, _exit

FORMATS = ("table", "csv", "json")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and value.as_tuple().exponent == 0 else float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def write_report(settings: ServiceSettings, query: ReportQuery, fmt: str, out: TextIO) -> int:
    if not is_postgres(settings.database_url):
        raise BadRequest("report needs PostgreSQL: the reporting views do not exist on SQLite (docs/reporting.md)")
    engine = create_engine(settings.database_url, settings.database)
    try:
        async with engine.connect() as conn:
            if await conn.scalar(text("SELECT to_regclass('reporting.time_entries')")) is None:
                raise BadRequest("the reporting views are missing: run `migrate` first (docs/reporting.md)")
            rows = stream_rows(conn, query)
            if fmt == "csv":
                writer = csv.writer(out, lineterminator="\n")
                writer.writerow(query.columns)
                async for row in rows:
                    writer.writerow([_text(row[c]) for c in query.columns])
            elif fmt == "json":
                out.write("[")
                first = True
                async for row in rows:
                    out.write(("\n" if first else ",\n") + json.dumps({c: _json_value(row[c]) for c in query.columns}))
                    first = False
                out.write("\n]\n" if not first else "]\n")
            else:
                table = Table(*query.columns)
                async for row in rows:
                    table.add_row(*(_text(row[c]) for c in query.columns))
                Console(file=out, width=200).print(table)
            out.flush()
    finally:
        await engine.dispose()
    return 0


def add_report_command(cli: typer.Typer, settings: Callable[[], ServiceSettings]) -> None:
    """Register ``report`` on a service's CLI (see :func:`clockify_core.cli.build_cli`)."""

    @cli.command()
    def report(
        since: datetime = typer.Option(..., "--since", formats=DATE_FORMATS, help="First moment, UTC (inclusive)"),
        until: datetime = typer.Option(..., "--until", formats=DATE_FORMATS, help="End, UTC (exclusive)"),
        by: str = typer.Option("project", "--by", help="project, client, user, tag or entry"),
        fmt: str = typer.Option("table", "--format", help="table, csv or json"),
        workspace: str | None = typer.Option(None, "--workspace", help="Only this workspace"),
    ) -> None:
        """Hours, billable hours and amounts per project, client, user or tag (or every entry) from the mirror."""
        if by not in BY:
            raise typer.BadParameter(f"--by must be one of {', '.join(BY)}", param_hint="--by")
        if fmt not in FORMATS:
            raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}", param_hint="--format")
        start, end = _utc(since), _utc(until)
        if end <= start:
            raise typer.BadParameter("--until must be after --since", param_hint="--until")
        query = ReportQuery(since=start, until=end, by=by, workspace_id=workspace)

        async def work() -> int:
            return await write_report(settings(), query, fmt, sys.stdout)

        _exit(work, settings)
