"""What the images run, run here without Docker: the entrypoint script, the service command and
the health checks exactly as the Dockerfile and docker-compose.yml write them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx
import pytest

from clockify_core.db.migrate import head_revision
from clockify_core.testing.processes import ServiceProcess, free_port
from tests.ops import dockerlint
from tests.ops.support import ROOT, load_yaml

ENTRYPOINT = ROOT / "scripts" / "docker" / "entrypoint.sh"
TARGET = "clockify-addon"  # one service stands for the three: their stages differ only in names
PREFIX = "CLOCKIFY_"
VENV_BIN = str(Path(sys.executable).parent)
pytestmark = pytest.mark.slow  # every test starts the service's command line or server


def _image_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The image's ENV for TARGET (PATH as the image sets it), a free port and a SQLite file."""
    dockerfile = dockerlint.parse((ROOT / "Dockerfile").read_text(encoding="utf-8"))
    env = dockerfile.env(dockerfile.stage(TARGET))
    env["PATH"] = env["PATH"].replace("/opt/venv/bin", VENV_BIN).replace("$PATH", os.environ["PATH"])
    return {
        **env,
        "PORT": str(free_port()),
        "WEB_CONCURRENCY": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),  # not this machine's /dev/shm
        f"{PREFIX}DB_URL": f"sqlite+aiosqlite:///{tmp_path / 'addon.db'}",
        f"{PREFIX}BASE_URL": "https://addon.example.com",
        **extra,
    }


def _run(args: Sequence[str], env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX) and k not in ("DATABASE_URL", "ENV")}
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args], env={**clean, **env}, cwd=cwd, capture_output=True, text=True,
        timeout=120, check=False,
    )


def _revision(path: Path) -> str | None:
    with sqlite3.connect(path) as conn:
        try:
            return str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])
        except sqlite3.OperationalError:
            return None


def test_service_commands_go_to_the_service_cli(tmp_path: Path) -> None:
    result = _run(["show-config"], _image_env(tmp_path, CLOCKIFY_ADDON_KEY="ops-entry"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert '"addon_key": "ops-entry"' in result.stdout


def test_migrate_on_start_migrates_before_the_command(tmp_path: Path) -> None:
    command = ["python", "-c", "print('serving')"]
    result = _run(command, _image_env(tmp_path), tmp_path)
    assert result.stdout.strip() == "serving"
    assert not (tmp_path / "addon.db").exists()
    result = _run(command, _image_env(tmp_path, MIGRATE_ON_START="true"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "serving"
    assert _revision(tmp_path / "addon.db") == head_revision()


def test_a_failed_migration_stops_the_container(tmp_path: Path) -> None:
    env = _image_env(tmp_path, MIGRATE_ON_START="true")
    env[f"{PREFIX}DB_URL"] = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere"
    result = _run(["python", "-c", "print('serving')"], env, tmp_path)
    assert result.returncode != 0
    assert "serving" not in result.stdout


def test_the_entrypoint_needs_the_service_name(tmp_path: Path) -> None:
    env = _image_env(tmp_path)
    env.pop("SERVICE_CLI")
    result = _run(["migrate"], env, tmp_path)
    assert result.returncode != 0
    assert "SERVICE_CLI" in result.stderr


class ImageProcess(ServiceProcess):
    """The image's ENTRYPOINT + CMD as one subprocess."""

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str], port: int, log_path: Path, cwd: Path) -> None:
        super().__init__(TARGET, env=env, port=port, log_path=log_path, cwd=cwd)
        self.argv = list(argv)

    def command(self) -> Sequence[str]:
        return self.argv


def _health_checks() -> dict[str, list[str]]:
    dockerfile = dockerlint.parse((ROOT / "Dockerfile").read_text(encoding="utf-8"))
    check = dockerfile.effective(dockerfile.stage(TARGET), "HEALTHCHECK")
    assert check is not None
    assert check.exec_form is not None
    compose = load_yaml(ROOT / "docker-compose.yml")["services"][TARGET]["healthcheck"]["test"]
    assert compose[0] == "CMD"
    return {"Dockerfile": check.exec_form, "docker-compose.yml": compose[1:]}


def _healthy(command: list[str], env: Mapping[str, str]) -> bool:
    argv = [sys.executable if command[0] == "python" else command[0], *command[1:]]
    return subprocess.run(argv, env={**os.environ, **env}, capture_output=True, timeout=30, check=False).returncode == 0


@pytest.fixture
def image(tmp_path: Path) -> Iterator[list[ImageProcess]]:
    started: list[ImageProcess] = []
    yield started
    for process in started:
        process.stop()


def test_the_image_command_serves_and_its_health_checks_follow_readiness(
    tmp_path: Path, image: list[ImageProcess]
) -> None:
    dockerfile = dockerlint.parse((ROOT / "Dockerfile").read_text(encoding="utf-8"))
    stage = dockerfile.stage(TARGET)
    cmd, entrypoint = dockerfile.effective(stage, "CMD"), dockerfile.effective(stage, "ENTRYPOINT")
    assert cmd is not None
    assert cmd.exec_form
    assert entrypoint is not None
    assert entrypoint.exec_form
    argv = ["sh", str(ENTRYPOINT), *cmd.exec_form]  # ENTRYPOINT ["docker-entrypoint"] + CMD
    checks = _health_checks()

    # The app's own startup migration switched off: alive, but not ready, so not healthy.
    env = _image_env(tmp_path, **{f"{PREFIX}RUN_MIGRATIONS": "false"})
    port = int(env["PORT"])
    image.append(ImageProcess(argv, env=env, port=port, log_path=tmp_path / "first.log", cwd=tmp_path).start())
    image[-1].wait_ready("/healthz")
    assert httpx.get(f"{image[-1].url}/ready").status_code == 503
    assert not any(_healthy(check, env) for check in checks.values())
    assert image[-1].stop(), image[-1].tail_log()
    assert _revision(tmp_path / "addon.db") is None

    # The entrypoint migrates first: ready, healthy by both checks.
    env = {**env, "MIGRATE_ON_START": "true"}
    image.append(ImageProcess(argv, env=env, port=port, log_path=tmp_path / "second.log", cwd=tmp_path).start())
    image[-1].wait_ready("/ready")
    for source, check in checks.items():
        assert _healthy(check, env), source
    assert "Booting worker" in (tmp_path / "second.log").read_text()  # gunicorn's arbiter, one worker
    assert image[-1].stop(), image[-1].tail_log()

    # Nothing listening: unhealthy, quickly.
    assert not any(_healthy(check, env) for check in checks.values())
