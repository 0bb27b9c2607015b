"""Settings of clockify_addon: the core blocks under the CLOCKIFY_ prefix."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from clockify_core.kit import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "clockify_addon"
    env_prefixes: ClassVar[tuple[str, ...]] = ("CLOCKIFY_",)
    default_addon_key: ClassVar[str] = "clockify-addon"
    default_port: ClassVar[int] = 8002

    base_url: str = Field("http://localhost:8002", description="Public URL Clockify reaches this service at")
