"""Settings: prefixes, flat contract names, fallbacks, priority and production refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from api_studio.settings import Settings as ApiStudioSettings
from clockify_addon.settings import Settings as AddonSettings
from clockify_core.errors import ConfigurationError
from universal_webhook.settings import Settings as UwSettings

CONTRACT_NAMES = [
    "DB_URL", "ADDON_KEY", "BASE_URL", "PUBLIC_KEY", "PUBLIC_KEY_PATH", "ALLOWED_API_HOSTS",
    "REDIS_URL", "OPERATOR_API_KEY", "ENCRYPTION_KEY", "RUN_MIGRATIONS",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Settings read the process environment and ./.env; isolate both.
    import os

    for key in list(os.environ):
        if key.startswith(("API_STUDIO_", "UNIVERSAL_WEBHOOK_", "UW_", "CLOCKIFY_")) or key in (
            "DATABASE_URL", "REDIS_URL", "LOG_LEVEL", "ENV",
        ):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("cls", "prefix"),
    [(ApiStudioSettings, "API_STUDIO_"), (UwSettings, "UNIVERSAL_WEBHOOK_"), (UwSettings, "UW_"), (AddonSettings, "CLOCKIFY_")],
)
def test_every_flat_contract_name_is_honoured(cls: type, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "DB_URL": "postgresql+asyncpg://u@db/x",
        "ADDON_KEY": "my-key",
        "BASE_URL": "https://addon.example.com",
        "PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----",
        "PUBLIC_KEY_PATH": "/keys/pub.pem",
        "ALLOWED_API_HOSTS": "clockify.me, 127.0.0.1:9000",
        "REDIS_URL": "redis://cache:6379/1",
        "OPERATOR_API_KEY": "op-key-123456789",
        "ENCRYPTION_KEY": "k" * 40,
        "RUN_MIGRATIONS": "false",
    }
    assert set(values) == set(CONTRACT_NAMES)
    for name, value in values.items():
        monkeypatch.setenv(prefix + name, value)
    s = cls()
    assert s.database_url == "postgresql+asyncpg://u@db/x"
    assert s.signing.addon_key == "my-key"
    assert s.base_url == "https://addon.example.com"
    assert s.signing.public_key is not None
    assert s.signing.public_key.startswith("-----BEGIN")
    assert s.signing.public_key_path == "/keys/pub.pem"
    assert s.http.allowed_api_hosts == ["clockify.me", "127.0.0.1:9000"]
    assert s.redis.url == "redis://cache:6379/1"
    assert s.security.operator_api_key.get_secret_value() == "op-key-123456789"
    assert s.security.encryption_key.get_secret_value() == "k" * 40
    assert s.database.run_migrations is False


def test_defaults_are_a_sqlite_file_per_service() -> None:
    assert ApiStudioSettings().database_url.endswith("data/api_studio.db")
    assert UwSettings().database_url.endswith("data/universal_webhook.db")
    assert AddonSettings().database_url.endswith("data/clockify_addon.db")
    assert AddonSettings().http.allowed_api_hosts == ["clockify.me"]
    assert AddonSettings().database.run_migrations is True


def test_unprefixed_fallbacks_and_priority(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "API_STUDIO_DB_URL=sqlite+aiosqlite:///from-dotenv.db\nREDIS_URL=redis://dotenv\nLOG_LEVEL=DEBUG\n"
    )
    s = ApiStudioSettings()
    assert s.database_url == "sqlite+aiosqlite:///from-dotenv.db"  # .env beats defaults
    assert s.redis.url == "redis://dotenv"
    assert s.logging.level == "DEBUG"

    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://env/fallback")
    assert ApiStudioSettings().database_url == "postgresql+asyncpg://env/fallback"  # environment beats .env

    monkeypatch.setenv("API_STUDIO_DB_URL", "postgresql+asyncpg://env/prefixed")
    assert ApiStudioSettings().database_url == "postgresql+asyncpg://env/prefixed"  # prefixed beats fallback

    monkeypatch.setenv("API_STUDIO_LOG_LEVEL", "WARNING")
    assert ApiStudioSettings().logging.level == "WARNING"


def test_nested_names_and_first_prefix_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UW_WORKER__CONCURRENCY", "3")
    monkeypatch.setenv("UNIVERSAL_WEBHOOK_RATE_LIMIT__RATE", "20")
    monkeypatch.setenv("UW_RATE_LIMIT__RATE", "5")
    s = UwSettings()
    assert s.worker.concurrency == 3
    assert s.rate_limit.rate == 20


def test_secrets_are_masked() -> None:
    s = AddonSettings(security={"encryption_key": "super-secret-value-123", "operator_api_key": "op-123456"})
    dumped = s.model_dump_json()
    assert "super-secret-value-123" not in dumped
    assert "op-123456" not in dumped


DB_PASSWORD, REDIS_PASSWORD = "db-pa55-Secret", "redis-pa55-Secret"


@pytest.mark.parametrize(("prefix", "cli_module"), [
    ("API_STUDIO_", "api_studio.cli"), ("UW_", "universal_webhook.cli"), ("CLOCKIFY_", "clockify_addon.cli"),
])
def test_url_passwords_are_masked_where_settings_are_shown(
    prefix: str, cli_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    from typer.testing import CliRunner

    db_url = f"postgresql+asyncpg://addon:{DB_PASSWORD}@db.internal:5432/addon"
    redis_url = f"redis://:{REDIS_PASSWORD}@cache.internal:6379/0"
    monkeypatch.setenv(f"{prefix}DB_URL", db_url)
    monkeypatch.setenv("REDIS_URL", redis_url)  # the unprefixed fallback
    module = importlib.import_module(cli_module)
    result = CliRunner().invoke(module.cli, ["show-config"])
    assert result.exit_code == 0, result.output
    assert DB_PASSWORD not in result.output
    assert REDIS_PASSWORD not in result.output
    assert '"url": "postgresql+asyncpg://addon:****@db.internal:5432/addon"' in result.output
    assert '"url": "redis://:****@cache.internal:6379/0"' in result.output

    settings = module.Settings()
    # Reprs (what a log line or a traceback with locals shows) are masked too...
    for shown in (repr(settings), repr(settings.database), str(settings), settings.model_dump_json()):
        assert DB_PASSWORD not in shown
        assert REDIS_PASSWORD not in shown
    # ...while the code that connects gets the URL unchanged, as a plain string.
    assert settings.database_url == db_url
    assert isinstance(settings.database_url, str)
    assert settings.redis.url == redis_url
    assert f"{settings.redis.url}" == redis_url


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://u:p%40ss@h/db", "postgresql://u:****@h/db"),
    ("postgresql://u@h/db?password=abc&sslmode=require", "postgresql://u@h/db?password=****&sslmode=require"),
    ("redis://user:pw@[::1]:6379/1", "redis://user:****@[::1]:6379/1"),
    ("sqlite+aiosqlite:///data/clockify_addon.db", "sqlite+aiosqlite:///data/clockify_addon.db"),
    ("postgresql+asyncpg://postgres@127.0.0.1:5432/x", "postgresql+asyncpg://postgres@127.0.0.1:5432/x"),
])
def test_mask_url_password(url: str, shown: str) -> None:
    from clockify_core.config import mask_url_password

    assert mask_url_password(url) == shown


@pytest.mark.parametrize(
    "security",
    [{}, {"encryption_key": "change-me"}, {"encryption_key": "a-long-random-key-1234567890", "operator_api_key": "changeme"}],
)
def test_production_refuses_placeholder_secrets(security: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENV", "production")
    with pytest.raises(ConfigurationError, match="placeholder"):
        AddonSettings(base_url="https://addon.example.com", security=security)


def test_production_accepts_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENV", "production")
    s = AddonSettings(base_url="https://addon.example.com", security={"encryption_key": "Zq8v2Lr7Xw1Nm4Kp9Tb6Hd3Jf5Gc0Ys2"})
    assert s.env == "production"


def test_partial_signing_block_keeps_the_service_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_STUDIO_PUBLIC_KEY", "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----")
    assert ApiStudioSettings().signing.addon_key == "api-studio"
    assert UwSettings(signing={"leeway_seconds": 5}).signing.addon_key == "universal-webhook"
