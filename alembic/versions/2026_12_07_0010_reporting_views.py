"""The `reporting` schema: views that answer time-tracking questions from the mirror

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

PostgreSQL only: SQLite has no schemas (``CREATE SCHEMA``), no ``jsonb_array_elements``
and no ``date_trunc``, so on SQLite this revision changes nothing (docs/reporting.md).
The views read the mirror's tables; docs/reporting.md and docs/schema.md document them,
including the rate precedence of ``reporting.time_entries``.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A jsonb value's "amount" as numeric when it is a JSON number, else NULL (odd bodies never fail a query).
def _amount(expr: str) -> str:
    return f"CASE WHEN jsonb_typeof({expr} -> 'amount') = 'number' THEN ({expr} ->> 'amount')::numeric END"


def _array(expr: str) -> str:
    return f"CASE WHEN jsonb_typeof({expr}) = 'array' THEN {expr} ELSE '[]'::jsonb END"


WORKSPACES = f"""
CREATE VIEW reporting.workspaces AS
SELECT e.workspace_id,
       e.raw ->> 'name' AS name,
       COALESCE(
           (SELECT c ->> 'code' FROM jsonb_array_elements({_array("e.raw -> 'currencies'")}) AS c
             WHERE jsonb_typeof(c) = 'object' AND c ->> 'isDefault' = 'true' LIMIT 1),
           e.raw -> 'hourlyRate' ->> 'currency') AS currency,
       {_amount("e.raw -> 'hourlyRate'")} AS hourly_rate
  FROM public.entities e
 WHERE e.kind = 'workspace' AND e.deleted_at IS NULL
"""  # noqa: S608 - constant SQL

# Rate precedence (docs/reporting.md#rates): the entry's own hourlyRate as Clockify stored it,
# else task -> project member -> project -> workspace member -> workspace.
TIME_ENTRIES = f"""
CREATE VIEW reporting.time_entries AS
WITH workspace_members AS (
    SELECT e.workspace_id, m ->> 'userId' AS user_id, max({_amount("m -> 'hourlyRate'")}) AS hourly_rate
      FROM public.entities e, jsonb_array_elements({_array("e.raw -> 'memberships'")}) AS m
     WHERE e.kind = 'workspace' AND e.deleted_at IS NULL AND jsonb_typeof(m) = 'object'
       AND COALESCE(m ->> 'membershipType', 'WORKSPACE') = 'WORKSPACE'
     GROUP BY 1, 2
), project_members AS (
    SELECT p.workspace_id, p.id AS project_id, m ->> 'userId' AS user_id,
           max({_amount("m -> 'hourlyRate'")}) AS hourly_rate
      FROM public.projects p, jsonb_array_elements({_array("p.raw -> 'memberships'")}) AS m
     WHERE jsonb_typeof(m) = 'object' AND COALESCE(m ->> 'membershipType', 'PROJECT') = 'PROJECT'
     GROUP BY 1, 2, 3
), rated AS (
    SELECT te.*,
           u.name AS user_name, u.email AS user_email,
           p.name AS project_name, p.client_id, c.name AS client_name, t.name AS task_name,
           CASE WHEN te.hourly_rate IS NOT NULL THEN 'time_entry'
                WHEN t.hourly_rate IS NOT NULL THEN 'task'
                WHEN pm.hourly_rate IS NOT NULL THEN 'project_member'
                WHEN p.hourly_rate IS NOT NULL THEN 'project'
                WHEN wm.hourly_rate IS NOT NULL THEN 'workspace_member'
                WHEN w.hourly_rate IS NOT NULL THEN 'workspace' END AS rate_source,
           COALESCE(te.hourly_rate::numeric, t.hourly_rate::numeric, pm.hourly_rate, p.hourly_rate::numeric,
                    wm.hourly_rate, w.hourly_rate) AS applied_rate,
           COALESCE(te.currency, w.currency) AS applied_currency
      FROM public.time_entries te
      LEFT JOIN public.users u ON u.workspace_id = te.workspace_id AND u.id = te.user_id
      LEFT JOIN public.projects p ON p.workspace_id = te.workspace_id AND p.id = te.project_id
      LEFT JOIN public.clients c ON c.workspace_id = te.workspace_id AND c.id = p.client_id
      LEFT JOIN public.tasks t ON t.workspace_id = te.workspace_id AND t.id = te.task_id
      LEFT JOIN project_members pm
             ON pm.workspace_id = te.workspace_id AND pm.project_id = te.project_id AND pm.user_id = te.user_id
      LEFT JOIN workspace_members wm ON wm.workspace_id = te.workspace_id AND wm.user_id = te.user_id
      LEFT JOIN reporting.workspaces w ON w.workspace_id = te.workspace_id
     WHERE te.deleted_at IS NULL
), amounts AS (
    SELECT rated.*,
           CASE WHEN end_at IS NULL THEN NULL ELSE duration_seconds END AS finished_seconds,
           CASE WHEN billable AND end_at IS NOT NULL AND duration_seconds > 0
                THEN COALESCE(round(applied_rate * duration_seconds / 3600), 0) ELSE 0 END AS earned_cents
      FROM rated
)
SELECT workspace_id, id, user_id, user_name, user_email,
       project_id, project_name, client_id, client_name, task_id, task_name,
       tag_ids,
       ARRAY(SELECT tg.name FROM jsonb_array_elements_text({_array("amounts.tag_ids")}) WITH ORDINALITY AS x(tag_id, n)
               JOIN public.tags tg ON tg.workspace_id = amounts.workspace_id AND tg.id = x.tag_id
              ORDER BY x.n) AS tag_names,
       description, type,
       start_at, end_at, end_at IS NULL AS is_running,
       finished_seconds AS duration_seconds,
       round(finished_seconds / 3600.0, 6) AS hours,
       COALESCE(billable, false) AS billable,
       applied_rate AS hourly_rate, rate_source, applied_currency AS currency,
       earned_cents AS amount_cents,
       round(earned_cents / 100.0, 2) AS amount,
       is_locked, written_at
  FROM amounts
"""  # noqa: S608 - constant SQL

TIME_ENTRY_TAGS = """
CREATE VIEW reporting.time_entry_tags AS
SELECT te.workspace_id, te.id AS time_entry_id, x.tag_id, tg.name AS tag_name,
       te.user_id, te.project_id, te.client_id, te.start_at, te.end_at, te.is_running,
       te.duration_seconds, te.billable, te.currency, te.amount_cents
  FROM reporting.time_entries te
  CROSS JOIN LATERAL (
      SELECT t.tag_id FROM jsonb_array_elements_text(
          CASE WHEN jsonb_typeof(te.tag_ids) = 'array' THEN te.tag_ids ELSE '[]'::jsonb END) AS t(tag_id)
      UNION ALL
      SELECT NULL WHERE COALESCE(jsonb_array_length(
          CASE WHEN jsonb_typeof(te.tag_ids) = 'array' THEN te.tag_ids ELSE '[]'::jsonb END), 0) = 0
  ) AS x
  LEFT JOIN public.tags tg ON tg.workspace_id = te.workspace_id AND tg.id = x.tag_id
"""

# dimension -> (source view, key column, name column)
_DIMENSIONS = {
    "user": ("reporting.time_entries", "user_id", "user_name"),
    "project": ("reporting.time_entries", "project_id", "project_name"),
    "client": ("reporting.time_entries", "client_id", "client_name"),
    "tag": ("reporting.time_entry_tags", "tag_id", "tag_name"),
}


def _rollup(name: str, unit: str) -> str:
    branches = [  # constant SQL: the names come from _DIMENSIONS
        f"""SELECT workspace_id, currency, date_trunc('{unit}', start_at AT TIME ZONE 'UTC')::date AS period_start,
       '{dimension}'::text AS dimension, {key} AS key_id, max({label}) AS key_name,
       count(*) AS entries,
       sum(duration_seconds) AS duration_seconds,
       round(sum(duration_seconds) / 3600.0, 4) AS hours,
       sum(CASE WHEN billable THEN duration_seconds ELSE 0 END) AS billable_seconds,
       round(sum(CASE WHEN billable THEN duration_seconds ELSE 0 END) / 3600.0, 4) AS billable_hours,
       sum(amount_cents) AS amount_cents,
       round(sum(amount_cents) / 100.0, 2) AS amount
  FROM {source}
 WHERE NOT is_running
 GROUP BY workspace_id, currency, 3, {key}"""  # noqa: S608
        for dimension, (source, key, label) in _DIMENSIONS.items()
    ]
    return f"CREATE VIEW reporting.{name} AS\n" + "\nUNION ALL\n".join(branches)


RUNNING_TIMERS = """
CREATE VIEW reporting.running_timers AS
SELECT workspace_id, id, user_id, user_name, project_id, project_name, client_name, task_name, description,
       start_at, floor(extract(epoch FROM now() - start_at))::bigint AS running_seconds
  FROM reporting.time_entries
 WHERE is_running
"""

VIEWS = ("running_timers", "monthly", "weekly", "daily", "time_entry_tags", "time_entries", "workspaces")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE SCHEMA IF NOT EXISTS reporting")
    for statement in (WORKSPACES, TIME_ENTRIES, TIME_ENTRY_TAGS, _rollup("daily", "day"), _rollup("weekly", "week"),
                      _rollup("monthly", "month"), RUNNING_TIMERS):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS reporting.{name}")
    op.execute("DROP SCHEMA IF EXISTS reporting")
