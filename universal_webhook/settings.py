"""Settings of universal_webhook: the core blocks under the UNIVERSAL_WEBHOOK_ prefix."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from clockify_core.kit import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "universal_webhook"
    env_prefixes: ClassVar[tuple[str, ...]] = ("UNIVERSAL_WEBHOOK_", "UW_")
    default_addon_key: ClassVar[str] = "universal-webhook"
    default_port: ClassVar[int] = 8001

    base_url: str = Field("http://localhost:8001", description="Public URL Clockify reaches this service at")
