"""Start-up errors in one or two lines: the variable (or port), its value, what is expected.

Every entry point (the service commands, ``uvicorn <service>.main:app``, ``clockify-sim``)
reports an invalid setting or a known start-up failure (database unreachable or missing,
port in use, unreadable key) here instead of as a traceback, and exits with
:data:`EXIT_CONFIG`. Secrets are never shown: a URL's password becomes ``****`` and a
secret setting shows only its length.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import asyncpg
from dotenv import dotenv_values
from pydantic import SecretStr, ValidationError

from clockify_core.config import ServiceSettings, mask_url_password
from clockify_core.errors import ConfigurationError

EXIT_CONFIG = 2
# Gunicorn's arbiter stops on this worker exit code ("worker failed to boot") instead of
# starting the worker again and again.
GUNICORN_BOOT_ERROR = 3
_SECRET_WORDS = ("key", "token", "secret", "password")
_MAX_VALUE = 120
_USERINFO = re.compile(r"(://[^:/@\s'\"]+:)[^@\s'\"]+@")

S = TypeVar("S", bound=ServiceSettings)


class StartupError(ConfigurationError):
    """A start-up failure whose ``detail`` is the one or two lines to print."""


def env_candidates(settings_cls: type[ServiceSettings], path: Sequence[str]) -> list[str]:
    """Every environment name that sets the field at ``path``, highest priority first."""
    target = tuple(path)
    names: list[str] = []
    for prefix in settings_cls.env_prefixes:
        names += [prefix + flat for flat, where in settings_cls.flat_aliases.items() if where == target]
        names.append(prefix + "__".join(target).upper())
    names += [name for name, where in settings_cls.fallbacks.items() if where == target]
    return names


def env_name(settings_cls: type[ServiceSettings], path: Sequence[str], env_file: str | Path = ".env") -> str:
    """The name the operator set for ``path`` (environment, then ``.env``), else the usual one."""
    names = env_candidates(settings_cls, path)
    environ = {key.upper() for key in os.environ}
    dotenv = {key.upper() for key in dotenv_values(env_file)} if Path(env_file).is_file() else set()
    for source in (environ, dotenv):
        for name in names:
            if name in source:
                return name
    return names[0] if names else ".".join(path).upper()


def shown(path: Sequence[str], value: Any) -> str:
    """``value`` as it may appear in an error line: secrets masked, long values cut."""
    if isinstance(value, SecretStr) or any(word in (path[-1] if path else "") for word in _SECRET_WORDS):
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        return f"<secret, {len(text)} characters>"
    if isinstance(value, str):
        text = mask_url_password(value) if "://" in value else value
        return repr(text if len(text) <= _MAX_VALUE else text[:_MAX_VALUE] + "...")
    return _USERINFO.sub(r"\1****@", repr(value))  # a URL inside a block given as a whole


def _reason(message: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return message[:1].lower() + message[1:]


def settings_error_lines(exc: ValidationError, settings_cls: type[ServiceSettings]) -> list[str]:
    """At most two lines for a settings ``ValidationError``: the first problem, then the others' names."""
    lines: list[str] = []
    names: list[str] = []
    for error in exc.errors(include_url=False):
        path = [str(part) for part in error["loc"] if isinstance(part, str)]
        name = env_name(settings_cls, path)
        names.append(name)
        if not lines:
            value = error.get("input")
            if error["type"] == "missing":
                lines.append(f"error: {name} is not set: {_reason(error['msg'])}")
            else:
                lines.append(f"error: {name}={shown(path, value)}: {_reason(str(error['msg']))}")
    if len(names) > 1:
        lines.append(f"error: also invalid: {', '.join(dict.fromkeys(names[1:]))} (fix these too)")
    return lines


def qualify_names(text: str, settings_cls: type[ServiceSettings]) -> str:
    """``text`` with each bare setting name (``ENCRYPTION_KEY``) written as the operator sets it
    (``CLOCKIFY_ENCRYPTION_KEY``)."""
    paths = {**settings_cls.flat_aliases, **{name.upper(): (name,) for name in settings_cls.model_fields}}

    def replace(match: re.Match[str]) -> str:
        return env_name(settings_cls, paths[match.group(0)])

    pattern = "|".join(sorted(map(re.escape, paths), key=len, reverse=True))
    return re.sub(rf"(?<![A-Z_])(?:{pattern})(?![A-Z_])", replace, text)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop(0)
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        orig = getattr(item, "orig", None)
        todo += [item.__cause__, item.__context__, orig if isinstance(orig, BaseException) else None]
        if isinstance(item, BaseExceptionGroup):
            todo += list(item.exceptions)


def database_failure(exc: BaseException) -> str | None:
    """Why the database could not be reached, when ``exc`` says so; None for anything else."""
    for item in _chain(exc):
        if isinstance(item, asyncpg.InvalidCatalogNameError):
            return f"{item} (create it, or point the variable at a database that exists)"
        if isinstance(item, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError):
            return f"refused: {item}"
        if isinstance(item, asyncpg.TooManyConnectionsError):
            return f"refused: {item}"
        if isinstance(item, socket.gaierror):
            return f"unknown host: {item}"
        if isinstance(item, TimeoutError):
            return "no answer within the connect timeout"
        if isinstance(item, OSError) and item.errno is not None:
            if item.filename is not None:  # a SQLite file or its folder
                return f"cannot open {item.filename}: {item.strerror}"
            return f"cannot connect: {item.strerror or item}"
        if isinstance(item, sqlite3.OperationalError) and "unable to open" in str(item):
            return f"cannot open the SQLite file: {item}"
    return None


def database_line(settings: ServiceSettings, reason: str) -> str:
    name = env_name(type(settings), ("database", "url"))
    return f"error: {name}={shown(('database', 'url'), settings.database_url)}: cannot reach the database: {reason}"


def port_in_use(host: str, port: int) -> str | None:
    """None when ``host:port`` can be bound now, else why not."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def port_line(option: str, host: str, port: int, reason: str) -> str:
    return f"error: {option}={port}: cannot listen on {host}:{port}: {reason} (expected a free port; choose another)"


def fail(lines: Sequence[str], *, code: int = EXIT_CONFIG) -> NoReturn:
    """Print ``lines`` to stderr and exit with ``code``."""
    sys.stderr.write("".join(line.rstrip("\n") + "\n" for line in lines))
    sys.stderr.flush()
    raise SystemExit(code)


def failure_lines(exc: BaseException, settings_cls: type[ServiceSettings]) -> list[str] | None:
    """The lines for invalid settings or a refused configuration, or None when ``exc`` is neither."""
    if isinstance(exc, ValidationError):
        return settings_error_lines(exc, settings_cls)
    if isinstance(exc, StartupError):
        return exc.detail.splitlines()[:2]
    if isinstance(exc, ConfigurationError):
        return [f"error: {qualify_names(exc.detail, settings_cls)}"]
    return None


async def probe_database(settings: ServiceSettings) -> str | None:
    """None when the configured database answers ``SELECT 1``, else why not."""
    from sqlalchemy import text

    from clockify_core.db import create_engine

    engine = None
    try:
        engine = create_engine(settings.database_url, settings.database)  # makes a SQLite file's folder
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return database_failure(exc) or f"{type(exc).__name__}: {exc}"
    finally:
        if engine is not None:
            await engine.dispose()
    return None


async def database_lines(exc: BaseException, settings: ServiceSettings) -> list[str] | None:
    """One line naming the database variable when ``exc`` came from an unreachable or missing
    database, else None. A connection-like error is checked against the database itself, so a
    failure elsewhere (a network error to another host) is not blamed on it."""
    if database_failure(exc) is None:
        return None
    reason = await probe_database(settings)
    return None if reason is None else [database_line(settings, reason)]


def load_settings(settings_cls: type[S]) -> S:
    """``settings_cls()`` from the environment; invalid settings print their lines and exit 2."""
    try:
        return settings_cls()
    except (ValidationError, ConfigurationError) as exc:
        lines = failure_lines(exc, settings_cls)
        assert lines is not None
        fail(lines, code=server_exit_code())


def exit_on_startup_failure(settings_cls: type[ServiceSettings], settings: Callable[[], ServiceSettings],
                            work: Callable[[], Any]) -> Any:
    """Run a command's ``work`` (it calls ``asyncio.run`` itself); a known start-up failure
    prints its lines and exits 2."""
    try:
        return work()
    except Exception as exc:
        lines = failure_lines(exc, settings_cls) or asyncio.run(database_lines(exc, settings()))
        if lines is None:
            raise
        fail(lines)


def exit_process(lines: Sequence[str]) -> NoReturn:
    """End a server process (uvicorn or a gunicorn worker) from inside its event loop.

    Raising would make the ASGI server log the traceback; the lines are the whole report."""
    sys.stderr.write("".join(line + "\n" for line in lines))
    sys.stderr.flush()
    os._exit(server_exit_code())


def server_exit_code() -> int:
    """:data:`EXIT_CONFIG`, or gunicorn's boot-error code inside a gunicorn worker (its arbiter
    sets ``SERVER_SOFTWARE``), so gunicorn stops instead of starting the worker again and again."""
    return GUNICORN_BOOT_ERROR if os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn") else EXIT_CONFIG
