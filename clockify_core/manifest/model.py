"""Typed manifest (schema 1.5). Field names follow Clockify's camelCase on the wire."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field

from clockify_core.errors import ConfigurationError

LifecycleType = Literal["INSTALLED", "DELETED", "SETTINGS_UPDATED", "STATUS_CHANGED"]
AccessLevel = Literal["ADMINS", "EVERYONE"]
SettingType = Literal[
    "TXT", "NUMBER", "DROPDOWN_SINGLE", "DROPDOWN_MULTIPLE", "CHECKBOX", "LINK",
    "USER_DROPDOWN_SINGLE", "USER_DROPDOWN_MULTIPLE",
]


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)


class LifecycleEntry(_Wire):
    type: LifecycleType
    path: str


class WebhookEntry(_Wire):
    event: str
    path: str


class Component(_Wire):
    type: str
    access_level: AccessLevel = Field(alias="accessLevel")
    path: str
    label: str
    icon_path: str | None = Field(None, alias="iconPath")


class Setting(_Wire):
    id: str
    name: str
    type: SettingType
    value: str | int | float | bool | list[str]
    access_level: AccessLevel = Field(alias="accessLevel")
    description: str | None = None
    placeholder: str | None = None
    required: bool | None = None
    allowed_values: list[str] | None = Field(None, alias="allowedValues")


class SettingsHeader(_Wire):
    title: str


class SettingsTab(_Wire):
    id: str
    name: str
    header: SettingsHeader | None = None
    settings: list[Setting] = Field(default_factory=list)


class StructuredSettings(_Wire):
    tabs: list[SettingsTab]


class Manifest(_Wire):
    schema_version: str = Field("1.5", alias="schemaVersion")
    key: str = Field(min_length=2, max_length=50)
    name: str = Field(min_length=1, max_length=50)
    description: str | None = None
    base_url: str = Field(alias="baseUrl", pattern=r"^https?://")
    minimal_subscription_plan: str = Field(alias="minimalSubscriptionPlan")
    scopes: list[str]
    lifecycle: list[LifecycleEntry]
    webhooks: list[WebhookEntry]
    components: list[Component]
    settings: StructuredSettings | None = None

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


@lru_cache(maxsize=1)
def schema_1_5() -> dict[str, Any]:
    text = resources.files("clockify_core.manifest").joinpath("schema-1.5.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def validation_errors(document: dict[str, Any]) -> list[str]:
    """Messages for everything the 1.5 schema refuses in ``document`` (empty when valid)."""
    validator = jsonschema.Draft4Validator(schema_1_5())
    return [f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in validator.iter_errors(document)]


def validate(document: dict[str, Any]) -> None:
    errors = validation_errors(document)
    if errors:
        raise ConfigurationError("Manifest does not match schema 1.5: " + "; ".join(errors[:5]))
