"""Fixtures for the operations checks: the services as the env reference sees them, and a
clean environment in which settings are built for real."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.ops.support import env_reference


@pytest.fixture(scope="session")
def gen() -> Any:
    """scripts/gen_env_reference.py."""
    return env_reference()


@pytest.fixture(scope="session")
def services(gen: Any) -> list[Any]:
    return gen.load_services()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, services: list[Any]) -> Path:
    """No service-prefixed or unprefixed setting in the environment, and an empty working
    directory (so no .env) unless the test writes one there."""
    prefixes = tuple(prefix for service in services for prefix in service.prefixes)
    fallbacks = {name for service in services for name in service.settings_cls.fallbacks}
    for key in list(os.environ):
        if key.upper().startswith(prefixes) or key.upper() in fallbacks:
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def settings_from(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``settings_from(service, env)``: the service's real Settings() with ``env`` set."""

    def build(service: Any, env: Mapping[str, str]) -> Any:
        with monkeypatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            return service.settings_cls()

    return build


@pytest.fixture
def raw_source(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., dict[str, Any]]]:
    """``raw_source(service, env)``: what the service's environment source reads, unvalidated."""
    from clockify_core.config import LayeredEnvSource

    def read(service: Any, env: Mapping[str, str]) -> dict[str, Any]:
        with monkeypatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            return LayeredEnvSource(service.settings_cls)()

    return read
