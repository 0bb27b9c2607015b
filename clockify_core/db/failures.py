"""Error text that is safe to store and log: short, and free of the data that failed.

A SQLAlchemy error's ``str()`` holds the SQL statement and its bound parameters (an event
body, a mirror row's values) and the server's DETAIL line repeats the row. Rows such as
``inbox_events.last_error``, ``jobs.error`` and ``flow_runs.error`` are read by operators and
members of the workspace, so only the exception classes and the server's one-line message
are kept.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from clockify_core.errors import ClockifyError

ERROR_MAX = 500


def describe_failure(exc: BaseException, *, limit: int = ERROR_MAX) -> str:
    """What went wrong, in at most ``limit`` characters, without SQL or parameters."""
    if isinstance(exc, ClockifyError):
        text = exc.detail
    elif isinstance(exc, sa_exc.StatementError) and exc.orig is not None:
        # Under SQLAlchemy's asyncpg adapter the driver's own exception is the cause.
        driver = exc.orig.__cause__ or exc.orig
        text = f"{type(exc).__name__} ({type(driver).__name__}): {_first_line(driver)}"
    else:
        text = f"{type(exc).__name__}: {_first_line(exc)}"
    return text[:limit]


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().split("\n", 1)[0]
