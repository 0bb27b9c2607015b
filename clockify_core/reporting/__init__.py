"""Reports from the mirror: the `reporting` schema's views (alembic revision 0010) and the `report` command.

docs/reporting.md describes the views, the rate precedence and how to connect BI tools.
"""
