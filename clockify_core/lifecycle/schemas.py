"""Lifecycle payloads exactly as Clockify sends them (docs/clockify.md#lifecycle). Unknown fields are kept."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Payload(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    addon_id: str = Field(alias="addonId", min_length=1, max_length=64)
    workspace_id: str = Field(alias="workspaceId", min_length=1, max_length=64)


class InstalledWebhook(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    path: str = Field(min_length=1, max_length=2048)
    webhook_type: str | None = Field(None, alias="webhookType")
    auth_token: str = Field(alias="authToken", min_length=1, max_length=8192)


class InstalledPayload(_Payload):
    auth_token: str = Field(alias="authToken", min_length=1, max_length=8192)
    as_user: str | None = Field(None, alias="asUser")
    api_url: str | None = Field(None, alias="apiUrl", max_length=2048)
    addon_user_id: str | None = Field(None, alias="addonUserId")
    webhooks: list[InstalledWebhook] = Field(default_factory=list, max_length=200)


class DeletedPayload(_Payload):
    as_user: str | None = Field(None, alias="asUser")


class StatusChangedPayload(_Payload):
    status: Literal["ACTIVE", "INACTIVE"]


class SettingValue(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=200)
    name: str | None = None
    value: str | int | float | bool | list[Any] | None = None


class SettingsUpdatedPayload(_Payload):
    settings: list[SettingValue] = Field(max_length=500)


class LifecycleAck(BaseModel):
    status: str
    workspace_id: str = Field(serialization_alias="workspaceId")
