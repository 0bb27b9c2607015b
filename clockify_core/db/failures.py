"""What a database failure means: an outage, a refused value, and text safe to store and log.

A SQLAlchemy error's ``str()`` holds the SQL statement and its bound parameters (an event
body, a mirror row's values) and the server's DETAIL line repeats the row. Rows such as
``inbox_events.last_error``, ``jobs.error`` and ``flow_runs.error`` are read by operators and
members of the workspace, so only the exception classes and the server's one-line message
are kept. The web layer answers an outage with 503 and a refused value with 400
(``clockify_core.web.problems``); the webhook ingest tells an outage from a bad event.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from clockify_core.errors import ClockifyError

ERROR_MAX = 500

# SQLSTATE class 22, "data exception": the database refused a value the statement carried.
_DATA_EXCEPTIONS = {
    "22021": "text contains a NUL character",  # character_not_in_repertoire
    "22P05": "text contains a NUL character (\\u0000)",  # untranslatable_character (JSONB)
    "22001": "a text is longer than the database allows",  # string_data_right_truncation
    "22003": "a number is out of range",  # numeric_value_out_of_range
    "22000": "a number is out of range or a value has the wrong form",  # asyncpg refused to encode it
}


def refused_value(exc: BaseException) -> str | None:
    """Why the database refused a value (SQLSTATE class 22), or None for any other error.

    Values reach statements from requests; a NUL character, which PostgreSQL text and JSONB
    cannot hold, can sit in any string of any body, query or path, so it is refused here
    once rather than by every field.
    """
    if not isinstance(exc, sa_exc.DBAPIError):
        return None
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if not isinstance(sqlstate, str) or not sqlstate.startswith("22"):
        return None
    return _DATA_EXCEPTIONS.get(sqlstate, "a value is malformed or out of range")


def is_database_outage(exc: BaseException) -> bool:
    """True for errors that mean "the database is unreachable", not "the query is wrong"."""
    if isinstance(exc, sa_exc.TimeoutError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
    return False


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
