"""Reports from the mirror: the `reporting` schema's views (alembic revision 0010) and the `report` command.

docs/reporting.md describes the views, the rate precedence and how to connect BI tools.
"""

from clockify_core.reporting.cli import add_report_command, write_report
from clockify_core.reporting.queries import ReportQuery, stream_rows

__all__ = ["ReportQuery", "add_report_command", "stream_rows", "write_report"]
