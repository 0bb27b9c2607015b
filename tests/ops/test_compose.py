"""docker-compose.yml and docker-compose.test.yml: checked as Compose would run them.

Every check runs on our own reading of the files (PyYAML, extends, interpolation) and, when a
Docker Compose v2 client is installed, again on what `docker compose config` makes of them.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.ops.support import (
    ROOT,
    compose_command,
    compose_config,
    compose_model,
    load_yaml,
    schema_errors,
)
from tests.ops.test_dockerfile import service_images

COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_TEST = ROOT / "docker-compose.test.yml"
INIT_SQL = ROOT / "scripts" / "docker" / "postgres-init.sql"
PROMETHEUS = ROOT / "ops" / "prometheus.yml"
PROFILES = ("--profile", "monitoring", "--profile", "demo")
CLIENT = compose_command()
READERS = ["pyyaml", pytest.param("compose", marks=pytest.mark.skipif(CLIENT is None, reason="no Docker Compose v2"))]


def _project(tmp_path: Path, env_file: str | None = None) -> Path:
    """A copy of the compose files (and what they reference) away from any local .env."""
    for name in (COMPOSE.name, COMPOSE_TEST.name):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "scripts" / "docker").mkdir(parents=True, exist_ok=True)
    shutil.copy(INIT_SQL, tmp_path / "scripts" / "docker" / INIT_SQL.name)
    (tmp_path / "ops").mkdir(exist_ok=True)
    shutil.copy(PROMETHEUS, tmp_path / "ops" / PROMETHEUS.name)
    if env_file is not None:
        (tmp_path / ".env").write_text(env_file, encoding="utf-8")
    return tmp_path


@pytest.fixture(params=READERS)
def read(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Path], dict[str, Any]]:
    """``read(path)``: the compose model with no variables set and every profile enabled."""

    def ours(path: Path) -> dict[str, Any]:
        return compose_model(path)[0]

    def theirs(path: Path) -> dict[str, Any]:
        assert CLIENT is not None
        return compose_config(CLIENT, _project(tmp_path), path.name, *PROFILES)

    return ours if request.param == "pyyaml" else theirs


@pytest.fixture(scope="module")
def images(services: list[Any]) -> dict[str, tuple[str, int]]:
    return service_images(services)


def _pinned(image: str) -> bool:
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    return bool(tag) and tag != "latest" and "${" not in tag


@pytest.mark.parametrize("path", [COMPOSE, COMPOSE_TEST], ids=lambda p: p.name)
def test_valid_against_the_compose_specification(path: Path) -> None:
    assert schema_errors("compose-spec.json", load_yaml(path)) == []


def test_the_schema_check_catches_mistakes() -> None:
    broken = {"services": {"api": {"image": "x:1", "depends_on": {"db": {"condition": "healthy"}}, "portz": [1]}}}
    errors = schema_errors("compose-spec.json", broken)
    assert any("portz" in error for error in errors)
    assert any("condition" in error or "healthy" in error for error in errors)


def test_services_ports_and_images(read: Callable[[Path], dict[str, Any]], images: dict[str, tuple[str, int]]) -> None:
    model = read(COMPOSE)
    services = model["services"]
    assert {"postgres", "redis", *images} <= set(services)
    assert re.fullmatch(r"postgres:16(\.\d+)*(-[a-z0-9]+)?", services["postgres"]["image"])
    assert re.fullmatch(r"redis:7(\.\d+)*(-[a-z0-9]+)?", services["redis"]["image"])
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["simulator"]["profiles"] == ["demo"]
    for name, service in services.items():
        if "build" not in service:
            assert _pinned(service["image"]), f"{name}: pin the image tag"
    for target, (_, port) in images.items():
        service = services[target]
        assert service["build"]["target"] == target
        assert {"target": port, "published": str(port)} in service["ports"]
        assert service["environment"]["PORT"] == str(port)
        assert service["image"].endswith(f"/{target}:dev")
        assert "profiles" not in service


def test_health_checks_and_start_order(read: Callable[[Path], dict[str, Any]], images: dict[str, tuple[str, int]]) -> None:
    services = read(COMPOSE)["services"]
    for name, service in services.items():
        test = service["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL"), name
        assert len(test) > 1, name
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert "--host=127.0.0.1" in services["postgres"]["healthcheck"]["test"]  # not the initdb socket
    assert "redis-cli ping" in " ".join(services["redis"]["healthcheck"]["test"])
    for target in images:
        service = services[target]
        command = service["healthcheck"]["test"]
        assert command[:3] == ["CMD", "python", "-c"]
        assert "/ready" in command[3]
        assert "'PORT'" in command[3]
        depends = service["depends_on"]
        for dependency in ("postgres", "redis"):
            assert depends[dependency]["condition"] == "service_healthy"
            assert depends[dependency].get("required", True) is True
        # The demo simulator, when its profile is on, before the services that read its key.
        assert depends["simulator"]["condition"] == "service_healthy"
        assert depends["simulator"]["required"] is False
        assert service["restart"] == "unless-stopped"


def test_named_volumes_and_the_database_init(read: Callable[[Path], dict[str, Any]], images: dict[str, tuple[str, int]]) -> None:
    model = read(COMPOSE)
    declared = set(model["volumes"])
    used = {
        volume["source"]
        for service in model["services"].values()
        for volume in service["volumes"]
        if volume["type"] == "volume"
    }
    assert used == declared
    postgres = {volume["target"]: volume for volume in model["services"]["postgres"]["volumes"]}
    assert postgres["/var/lib/postgresql/data"]["type"] == "volume"
    init = [v for target, v in postgres.items() if target.startswith("/docker-entrypoint-initdb.d/")]
    assert [(v["source"], v["read_only"]) for v in init] == [("scripts/docker/postgres-init.sql", True)]
    assert {v["target"] for v in model["services"]["redis"]["volumes"]} == {"/data"}
    assert any(v["target"] == "/prometheus" for v in model["services"]["prometheus"]["volumes"])

    sql = re.sub(r"--[^\n]*", "", INIT_SQL.read_text(encoding="utf-8"))
    statements = [s.strip() for s in sql.split(";") if s.strip()]
    created = {m.group(1) for s in statements if (m := re.fullmatch(r"CREATE DATABASE (\w+)", s, re.I))}
    assert len(statements) == len(created) == 3
    expected = {package for package, _ in images.values()}
    assert created == expected
    for target, (package, _) in images.items():
        url = next(v for k, v in model["services"][target]["environment"].items() if k.endswith("_DB_URL"))
        parts = urlsplit(url)
        assert parts.scheme == "postgresql+asyncpg"
        assert parts.hostname == "postgres"
        assert parts.path == f"/{package}"


def test_service_environment_uses_contract_names(
    read: Callable[[Path], dict[str, Any]],
    images: dict[str, tuple[str, int]],
    services: list[Any],
    gen: Any,
    settings_from: Callable[..., Any],
) -> None:
    """Every variable a service gets is one it reads (or one the image reads); no secret is set
    here; and the services' real settings, built from that environment, use compose's
    PostgreSQL and Redis and the code's defaults for the rest."""
    model = read(COMPOSE)
    runtime = {name for name, _, _ in gen.RUNTIME_VARIABLES}
    by_package = {service.name: service for service in services}
    redis_dbs = set()
    for target, (package, _) in images.items():
        service = by_package[package]
        blocks = gen.collect([service])
        names = {
            name: variable
            for block in blocks
            for variable in block.variables
            for name in gen.env_names(service, variable)
        }
        env = model["services"][target]["environment"]
        # (`compose config` folds env_file into environment, so this reads the file itself.)
        assert compose_model(COMPOSE)[0]["services"][target]["env_file"] == [{"path": ".env", "required": False}]
        unknown = set(env) - set(names) - runtime
        assert not unknown, f"{target}: {sorted(unknown)} are read by nothing"
        assert not [name for name in env if name in names and names[name].secret], "secrets come from .env only"
        prefix = service.prefixes[0]
        for contract in ("DB_URL", "REDIS_URL", "BASE_URL", "RUN_MIGRATIONS", "ALLOWED_API_HOSTS"):
            assert prefix + contract in env, f"{target}: {prefix}{contract}"
        settings = settings_from(service, {k: v for k, v in env.items() if v is not None})
        defaults = gen.isolated_defaults(service.settings_cls)
        assert settings.database_url == env[prefix + "DB_URL"]
        redis = urlsplit(settings.redis.url)
        assert redis.hostname == "redis"
        assert redis.port == 6379
        redis_dbs.add(redis.path)
        assert settings.base_url == defaults.base_url
        assert settings.http.allowed_api_hosts == defaults.http.allowed_api_hosts
        assert settings.database.run_migrations is defaults.database.run_migrations is True
        assert settings.env == "development"
    assert len(redis_dbs) == len(images), "each service keeps its own Redis database"


def test_every_compose_variable_is_documented(gen: Any, services: list[Any]) -> None:
    used: set[str] = set()
    for path in (COMPOSE, COMPOSE_TEST):
        used |= compose_model(path)[1]
    settings_names = {
        name
        for service in services
        for block in gen.collect([service])
        for variable in block.variables
        for name in gen.env_names(service, variable)
    }
    documented = {name for name, _, _ in gen.COMPOSE_VARIABLES} | set(gen.COMPOSE_PASSTHROUGH)
    assert used - settings_names - documented == set()
    assert documented - used == set(), "documented compose variables that compose no longer reads"
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    for name in documented:
        assert f"# {name}=" in example


def test_the_example_env_file_configures_compose(
    tmp_path: Path, services: list[Any], images: dict[str, tuple[str, int]]
) -> None:
    """`cp .env.example .env && docker compose up`: the values interpolated into compose and the
    file handed to the services agree with the example."""
    from dotenv import dotenv_values

    example = {k: v for k, v in dotenv_values(ROOT / ".env.example").items() if v is not None}
    model, _ = compose_model(COMPOSE, example)
    for name, service in model["services"].items():
        for key, value in service["environment"].items():
            if key in example:
                assert value == example[key], f"{name}: {key}"
    if CLIENT is not None:
        project = _project(tmp_path, (ROOT / ".env.example").read_text(encoding="utf-8"))
        config = compose_config(CLIENT, project, COMPOSE.name, *PROFILES)
        prefixes = {service.name: service.prefixes[0] for service in services}
        for target, (package, _) in images.items():
            env = config["services"][target]["environment"]
            key = f"{prefixes[package]}ENCRYPTION_KEY"
            assert env[key] == example[key]  # handed over by env_file


def test_prometheus_scrapes_all_three(read: Callable[[Path], dict[str, Any]], images: dict[str, tuple[str, int]]) -> None:
    model = read(COMPOSE)
    mounts = {v["target"]: v["source"] for v in model["services"]["prometheus"]["volumes"]}
    assert mounts["/etc/prometheus/prometheus.yml"] == "ops/prometheus.yml"
    command = " ".join(model["services"]["prometheus"]["command"])
    assert "--config.file=/etc/prometheus/prometheus.yml" in command
    config = load_yaml(PROMETHEUS)
    targets = {
        (job.get("metrics_path", "/metrics"), target)
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    expected = {("/metrics", f"{name}:{port}") for name, (_, port) in images.items()}
    assert targets == expected
    assert len({job["job_name"] for job in config["scrape_configs"]}) == len(config["scrape_configs"])


def test_the_test_runner_runs_the_readme_command(read: Callable[[Path], dict[str, Any]]) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
    (command,) = [block.strip() for block in blocks if "scripts/test" in block]
    model = read(COMPOSE_TEST)
    assert model["name"] == "clockify-addons-test"  # its own volumes, never the platform's
    runner = model["services"]["test-runner"]
    assert runner["command"] == command.split()
    assert re.fullmatch(r"python:3\.1[1-9]-slim", runner["image"])  # Debian: scripts/test installs Chromium
    env = runner["environment"]
    assert env["CI"] == "true"
    database, redis = urlsplit(env["TEST_DATABASE_URL"]), urlsplit(env["TEST_REDIS_URL"])
    assert database.scheme == "postgresql+asyncpg"
    assert database.hostname == "postgres"
    assert redis.scheme == "redis"
    assert redis.hostname == "redis"
    assert env["VENV"] != "/src/.venv"
    assert any(v["target"] == env["VENV"] for v in runner["volumes"])
    assert {"type": "bind", "source": ".", "target": runner["working_dir"], "read_only": False} in runner["volumes"]
    for dependency in ("postgres", "redis"):
        assert runner["depends_on"][dependency]["condition"] == "service_healthy"
    platform = read(COMPOSE)["services"]
    for name in ("postgres", "redis"):
        mine = model["services"][name]
        assert mine["image"] == platform[name]["image"]
        assert mine["healthcheck"]["test"] == platform[name]["healthcheck"]["test"]
    assert "scripts/docker/postgres-init.sql" in {v["source"] for v in model["services"]["postgres"]["volumes"]}


@pytest.mark.skipif(CLIENT is None, reason="no Docker Compose v2")
def test_compose_config_accepts_both_files_with_every_profile(tmp_path: Path) -> None:
    assert CLIENT is not None
    project = _project(tmp_path, (ROOT / ".env.example").read_text(encoding="utf-8"))
    for name in (COMPOSE.name, COMPOSE_TEST.name):
        assert compose_config(CLIENT, project, name, *PROFILES)["services"]
