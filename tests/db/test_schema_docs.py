"""docs/schema.md documents every table and column the migrations create, and nothing they do not.

The schema is read from a database migrated from empty (not from the models), so a
migration that adds a column fails here until the column is documented. The document's
rules: a table is a level-3 section named after it (``### `table` ``); a column counts as
documented when its name appears in backticks in that section; a level-3 section whose
heading names no table documents columns shared by every table of its level-2 section
(the mirror's common columns). In tables headed ``| column |`` every name of the first
cell must be a column of that table. Views of the ``reporting`` schema count as tables
named ``reporting.<view>`` (the heading names them so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Connection, inspect

from clockify_core.db import create_engine
from clockify_core.db.migrate import upgrade

pytestmark = pytest.mark.postgres

DOC = Path(__file__).parents[2] / "docs" / "schema.md"
_TICKED = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")
_HEADING = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)`")  # a table, or schema.view
VIEW_SCHEMAS = ("reporting",)


@dataclass
class Section:
    table: str | None
    names: set[str] = field(default_factory=set)  # every backticked identifier
    column_cells: set[str] = field(default_factory=set)  # first cells of `| column |` tables


def parse(text: str) -> dict[str, tuple[Section, list[Section]]]:
    """Table name → (its section, the shared sections of its level-2 part)."""
    parts: list[list[Section]] = [[]]
    in_column_table = False
    for line in text.splitlines():
        if line.startswith("## "):
            parts.append([])
            continue
        if line.startswith("### "):
            named = _HEADING.search(line)
            parts[-1].append(Section(named.group(1) if named else None))
            continue
        if not parts[-1]:
            continue
        section = parts[-1][-1]
        cells = (
            [c.strip() for c in line.strip().strip("|").split("|")]
            if line.lstrip().startswith("|")
            else []
        )
        if not cells:
            in_column_table = False
        elif cells[0] == "column":
            in_column_table = True
        elif in_column_table and not set(cells[0]) <= set("-: "):
            section.column_cells.update(_TICKED.findall(cells[0]))
        section.names.update(_TICKED.findall(line))
    documented: dict[str, tuple[Section, list[Section]]] = {}
    for part in parts:
        shared = [s for s in part if s.table is None]
        for section in part:
            if section.table is not None:
                assert section.table not in documented, f"`{section.table}` has two sections"
                documented[section.table] = (section, shared)
    return documented


def _columns(sync_conn: Connection) -> dict[str, set[str]]:
    inspector = inspect(sync_conn)
    columns = {
        t: {c["name"] for c in inspector.get_columns(t)}
        for t in inspector.get_table_names()
        if t != "alembic_version"
    }
    for schema in VIEW_SCHEMAS:
        for name in [*inspector.get_table_names(schema=schema), *inspector.get_view_names(schema=schema)]:
            columns[f"{schema}.{name}"] = {c["name"] for c in inspector.get_columns(name, schema=schema)}
    return columns


async def test_every_migrated_table_and_column_is_documented(pg_empty_url: str) -> None:
    engine = create_engine(pg_empty_url)
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            schema = await conn.run_sync(_columns)
    finally:
        await engine.dispose()
    documented = parse(DOC.read_text())

    assert not set(schema) - set(documented), (
        f"tables without a section: {sorted(set(schema) - set(documented))}"
    )
    assert not set(documented) - set(schema), (
        f"sections naming no table: {sorted(set(documented) - set(schema))}"
    )
    missing = {}
    unknown = {}
    for table, columns in schema.items():
        section, shared = documented[table]
        named = section.names.union(*(s.names for s in shared))
        if columns - named:
            missing[table] = sorted(columns - named)
        if section.column_cells - columns:
            unknown[table] = sorted(section.column_cells - columns)
    assert not missing, f"columns docs/schema.md does not mention: {missing}"
    assert not unknown, f"docs/schema.md lists columns the table does not have: {unknown}"


def test_the_parser_reads_sections_shared_columns_and_column_tables() -> None:
    """The rules above on a small document, so a parser that reads nothing cannot pass."""
    doc = "\n".join(
        [
            "## Part",
            "### Columns every table here has",
            "| column | meaning |",
            "|---|---|",
            "| `id` | key |",
            "### `things`",
            "| column | meaning |",
            "|---|---|",
            "| `name`, `size` | with `REGULAR` values |",
            "",
            "Also `colour` in prose.",
            "## Other",
            "### `others`",
            "| `kind` | from |",
            "|---|---|",
            "| `expense` | x |",
        ]
    )
    parsed = parse(doc)
    things, shared = parsed["things"]
    assert things.column_cells == {"name", "size"}
    assert things.names == {"name", "size", "REGULAR", "colour"}
    assert [s.names for s in shared] == [{"id"}]
    others, others_shared = parsed["others"]
    assert others.column_cells == set()
    assert others.names == {"kind", "expense"}
    assert others_shared == []
