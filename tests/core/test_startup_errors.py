"""Invalid settings and start-up failures end every entry point with one or two lines naming
the variable (or port), its value with secrets masked and what is expected, and exit code 2.

Each case runs the real entry point as a subprocess: the service command, ``uvicorn
<service>.main:app`` and ``clockify-sim``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from asgi_lifespan import LifespanManager
from pydantic import ValidationError
from sqlalchemy.engine import make_url

import clockify_addon.app
import clockify_addon.settings
from clockify_core.startup import StartupError, database_lines
from clockify_core.testing.processes import free_port

SETTING_PREFIXES = ("API_STUDIO_", "UNIVERSAL_WEBHOOK_", "UW_", "CLOCKIFY_")
FALLBACKS = {"DATABASE_URL", "REDIS_URL", "LOG_LEVEL", "ENV"}
STRONG_KEY = "k8Zq2Lr7Xw1Nm4Kp9Tb6Hd3Jf5Gc0Ys2-production"


def run(args: list[str], env: Mapping[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith(SETTING_PREFIXES) and k.upper() not in FALLBACKS}
    return subprocess.run(
        [sys.executable, *args], env={**base, **env}, cwd=cwd, capture_output=True, text=True, timeout=timeout,
        check=False,
    )


def addon(*args: str) -> list[str]:
    return ["-m", "clockify_addon", *args]


def uvicorn_app(port: int) -> list[str]:
    return ["-m", "uvicorn", "clockify_addon.main:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]


def lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def assert_reported(result: subprocess.CompletedProcess[str], *needles: str, max_lines: int = 2) -> str:
    err = lines(result)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert 1 <= len(err) <= max_lines, result.stderr
    assert err[0].startswith("error: "), result.stderr
    text = "\n".join(err)
    for needle in needles:
        assert needle in text, (needle, text)
    assert "Traceback" not in result.stderr + result.stdout
    return text


@pytest.fixture
def missing_db_url(postgres_server_url: str) -> str:
    """A URL on the real server, with a password, naming a database that does not exist."""
    url = make_url(postgres_server_url).set(password="s3cret-pw", database=f"cat_missing_{uuid.uuid4().hex[:8]}")
    return url.render_as_string(hide_password=False)


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def test_a_nonsense_database_url_is_named_by_the_command(tmp_path: Path) -> None:
    result = run(addon("migrate"), {"CLOCKIFY_DB_URL": "nonsense"}, tmp_path)
    assert_reported(result, "CLOCKIFY_DB_URL='nonsense'", "expected a SQLAlchemy URL such as sqlite+aiosqlite://",
                    "postgresql+asyncpg://", max_lines=1)


def test_a_nonsense_database_url_is_named_under_uvicorn(tmp_path: Path) -> None:
    result = run(uvicorn_app(free_port()), {"DATABASE_URL": "nonsense"}, tmp_path)
    assert_reported(result, "DATABASE_URL='nonsense'", "expected a SQLAlchemy URL", max_lines=1)


def test_a_base_url_that_is_not_a_url_is_refused_at_start_up(tmp_path: Path) -> None:
    result = run(uvicorn_app(free_port()), {"CLOCKIFY_BASE_URL": "not-a-url"}, tmp_path)
    assert_reported(result, "CLOCKIFY_BASE_URL='not-a-url'", "expected an absolute http(s) URL", max_lines=1)
    with pytest.raises(ValidationError, match="absolute http"):
        clockify_addon.settings.Settings(base_url="https://addon.example.com/x?y=1")


@pytest.mark.postgres
def test_a_missing_database_is_named_with_its_password_masked(missing_db_url: str, tmp_path: Path) -> None:
    env = {"CLOCKIFY_DB_URL": missing_db_url}
    served = run(uvicorn_app(free_port()), env, tmp_path)
    text = assert_reported(served, "CLOCKIFY_DB_URL=", ":****@", "cannot reach the database", "does not exist",
                           max_lines=1)
    migrated = run(addon("migrate"), env, tmp_path)
    assert assert_reported(migrated, max_lines=1) == text
    for result in (served, migrated):
        assert "s3cret-pw" not in result.stderr + result.stdout


def test_an_unreachable_database_is_named_by_the_worker_and_the_sync_commands(tmp_path: Path) -> None:
    env = {"CLOCKIFY_DATABASE__URL": "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"}
    for args in (addon("worker", "--once"), addon("jobs"), addon("sync")):
        result = run(args, env, tmp_path)
        assert_reported(result, "CLOCKIFY_DATABASE__URL='postgresql+asyncpg://postgres@127.0.0.1:1/nowhere'",
                        "cannot reach the database: cannot connect", max_lines=1)


def test_production_refuses_a_short_encryption_key_in_one_line(tmp_path: Path) -> None:
    env = {"ENV": "production", "CLOCKIFY_BASE_URL": "https://addon.example.com", "CLOCKIFY_ENCRYPTION_KEY": "short-k3y"}
    for args in (addon("show-config"), uvicorn_app(free_port())):
        result = run(args, env, tmp_path)
        assert_reported(result, "CLOCKIFY_ENCRYPTION_KEY has 9 characters", "at least 32", max_lines=1)
        assert "short-k3y" not in result.stderr + result.stdout
    # Every key of a rotation list counts; the documented strength passes.
    weak_second = run(addon("show-config"), {**env, "CLOCKIFY_ENCRYPTION_KEY": f"{STRONG_KEY},old"}, tmp_path)
    assert_reported(weak_second, "CLOCKIFY_ENCRYPTION_KEY has key 2 of 3 characters", max_lines=1)
    strong = run(addon("show-config"), {**env, "CLOCKIFY_ENCRYPTION_KEY": STRONG_KEY}, tmp_path)
    assert strong.returncode == 0, strong.stderr
    assert STRONG_KEY not in strong.stdout
    # A trailing comma adds no key (the cipher skips empty entries too).
    trailing = run(addon("show-config"), {**env, "CLOCKIFY_ENCRYPTION_KEY": f"{STRONG_KEY},"}, tmp_path)
    assert trailing.returncode == 0, trailing.stderr


def test_several_invalid_settings_take_two_lines_and_secrets_stay_masked(tmp_path: Path) -> None:
    env = {"CLOCKIFY_OPERATOR_API_KEY": '["not", "a", "string"]', "CLOCKIFY_DATABASE__POOL_SIZE": "0",
           "CLOCKIFY_ENV": "staging"}
    result = run(addon("show-config"), env, tmp_path)
    text = assert_reported(result, "CLOCKIFY_ENV='staging'", "also invalid:", "CLOCKIFY_DATABASE__POOL_SIZE",
                           "CLOCKIFY_OPERATOR_API_KEY")
    assert "not" not in text.split("also invalid:")[0]


def test_serve_names_a_busy_port(busy_port: int, tmp_path: Path) -> None:
    result = run(addon("serve", "--port", str(busy_port)), {}, tmp_path)
    assert_reported(result, f"--port={busy_port}", f"cannot listen on 127.0.0.1:{busy_port}", "expected a free port",
                    max_lines=1)


def test_the_simulator_names_a_busy_port(busy_port: int, tmp_path: Path) -> None:
    args = ["-m", "clockify_core.simulator", "serve", "--port", str(busy_port), "--key-dir", str(tmp_path)]
    result = run(args, {}, tmp_path)
    assert_reported(result, f"--port={busy_port}", "cannot listen", max_lines=1)


@pytest.mark.postgres
async def test_an_embedded_app_raises_one_startup_error(missing_db_url: str) -> None:
    """Started in-process (tests, an embedding host), the app raises the same lines instead of exiting."""
    settings = clockify_addon.settings.Settings(database={"url": missing_db_url}, worker={"enabled": False})
    app = clockify_addon.app.create_app(settings, configure_logs=False)
    with pytest.raises(StartupError) as refused:
        async with LifespanManager(app, startup_timeout=60):
            pass
    assert refused.value.detail.startswith("error: CLOCKIFY_DB_URL=")
    assert "does not exist" in refused.value.detail
    assert "s3cret-pw" not in refused.value.detail


@pytest.mark.parametrize("env", [{"CLOCKIFY_BASE_URL": "not-a-url"}, {"CLOCKIFY_DB_URL": "postgresql+asyncpg://u@127.0.0.1:1/x"}])
def test_gunicorn_stops_instead_of_restarting_a_worker_that_cannot_start(env: dict[str, str], tmp_path: Path) -> None:
    """Inside a gunicorn worker the same line is printed and the worker exits with gunicorn's
    boot-error code, so the arbiter stops (exit 3) rather than starting it again and again."""
    args = ["-m", "gunicorn", "clockify_addon.main:app", "-c", "python:clockify_core.gunicorn_conf",
            "--bind", f"127.0.0.1:{free_port()}", "--workers", "1"]
    result = run(args, env, tmp_path)
    assert result.returncode == 3, result.stderr[-2000:]
    ours = [line for line in lines(result) if line.startswith("error: ")]
    assert len(ours) == 1, result.stderr[-2000:]
    assert ours[0].startswith(f"error: {next(iter(env))}=")
    assert "Worker failed to boot" in result.stderr
    assert "Traceback" not in result.stderr


async def test_a_connection_error_is_blamed_on_the_database_only_when_it_is_down(tmp_path: Path) -> None:
    refused = ConnectionRefusedError(111, "Connect call failed ('10.0.0.1', 443)")  # e.g. another host
    up = clockify_addon.settings.Settings(database={"url": f"sqlite+aiosqlite:///{tmp_path / 'ok.db'}"})
    assert await database_lines(refused, up) is None
    down = clockify_addon.settings.Settings(database={"url": "postgresql+asyncpg://u:pw@127.0.0.1:1/x"})
    assert await database_lines(refused, down) == [
        "error: CLOCKIFY_DB_URL='postgresql+asyncpg://u:****@127.0.0.1:1/x': cannot reach the database: "
        "cannot connect: Connect call failed ('127.0.0.1', 1)"
    ]
    assert await database_lines(ValueError("not a connection problem"), down) is None
