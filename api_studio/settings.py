"""Settings of api_studio: the core blocks under the API_STUDIO_ prefix."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from clockify_core.kit import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "api_studio"
    env_prefixes: ClassVar[tuple[str, ...]] = ("API_STUDIO_",)
    default_addon_key: ClassVar[str] = "api-studio"
    default_port: ClassVar[int] = 8000

    base_url: str = Field("http://localhost:8000", description="Public URL Clockify reaches this service at")
