"""Every service's manifest validates against Clockify's schema 1.5 and follows its tier."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

import api_studio.app
import api_studio.settings
import clockify_addon.app
import clockify_addon.settings
import universal_webhook.app
import universal_webhook.settings
from api_studio.app import PROFILE as API_STUDIO
from clockify_addon.app import PROFILE as CLOCKIFY_ADDON
from clockify_core.catalog import ALL_EVENTS, ALL_SCOPES, COMMON_EVENTS
from clockify_core.manifest import build_manifest, runtime_webhook_events
from clockify_core.manifest.model import schema_1_5
from clockify_core.testing.apps import running_app
from clockify_core.tiers import ServiceProfile
from universal_webhook.app import PROFILE as UNIVERSAL_WEBHOOK

SCHEMA = schema_1_5()
SHARED = Path(__file__).resolve().parents[3] / "shared/clockify"
SHARED_SCHEMA = SHARED / "manifest-schema-1.5.json"
SAMPLE_COPIES = Path(__file__).resolve().parents[1] / "fixtures/samples"
PROFILES = [API_STUDIO, UNIVERSAL_WEBHOOK, CLOCKIFY_ADDON]


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@pytest.mark.parametrize("cap", [0, 10, 20, 50])
def test_manifest_validates_against_schema_1_5(profile: ServiceProfile, cap: int) -> None:
    doc = build_manifest(profile, addon_key="my-addon", base_url="https://addon.example.com/", webhook_cap=cap).to_wire()
    jsonschema.Draft4Validator(SCHEMA).validate(doc)
    assert doc["schemaVersion"] == "1.5"
    assert doc["baseUrl"] == "https://addon.example.com"
    assert len(doc["webhooks"]) == min(cap, len(profile.events))
    assert {w["event"] for w in doc["webhooks"]} | set(runtime_webhook_events(profile, cap)) == set(profile.events)
    assert {entry["type"] for entry in doc["lifecycle"]} == {"INSTALLED", "DELETED", "SETTINGS_UPDATED", "STATUS_CHANGED"}
    assert doc["components"][0]["type"] == "sidebar"
    assert "$schema" not in doc


SERVED = {
    "api_studio": (api_studio.app.create_app, api_studio.settings.Settings),
    "universal_webhook": (universal_webhook.app.create_app, universal_webhook.settings.Settings),
    "clockify_addon": (clockify_addon.app.create_app, clockify_addon.settings.Settings),
}


@pytest.mark.parametrize("service", list(SERVED))
async def test_served_manifest_validates_against_schema_1_5(service: str, tmp_path: Path) -> None:
    """What Clockify fetches: GET /manifest over HTTP from the running app, with its settings."""
    create_app, settings_cls = SERVED[service]
    base_url = f"https://{service.replace('_', '-')}.example.com"
    settings = settings_cls(
        base_url=base_url, signing={"addon_key": f"{service.replace('_', '-')}-key"},
        database={"url": f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"}, manifest={"webhook_cap": 20},
        worker={"enabled": False}, retention={"enabled": False}, sync={"scheduler": False},
    )
    async with running_app(create_app(settings, configure_logs=False)) as client:
        response = await client.get("/manifest")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    doc = response.json()
    jsonschema.Draft4Validator(SCHEMA).validate(doc)
    assert doc["baseUrl"] == base_url
    assert doc["key"] == settings.signing.addon_key
    profile = next(p for p in PROFILES if p.name == service)
    assert len(doc["webhooks"]) == min(20, len(profile.events))  # the configured cap, from settings


def test_tiers() -> None:
    assert API_STUDIO.default_plan == "STANDARD"
    assert UNIVERSAL_WEBHOOK.default_plan == "ENTERPRISE"
    assert CLOCKIFY_ADDON.default_plan == "FREE"
    assert CLOCKIFY_ADDON.plan_configurable
    assert set(API_STUDIO.events) == set(COMMON_EVENTS)
    assert len(COMMON_EVENTS) == 12
    assert set(UNIVERSAL_WEBHOOK.events) == set(CLOCKIFY_ADDON.events) == set(ALL_EVENTS)
    assert len(ALL_EVENTS) == 50
    assert set(CLOCKIFY_ADDON.scopes) == set(ALL_SCOPES)
    assert len(ALL_SCOPES) == 30
    assert all(scope.endswith("_READ") for scope in API_STUDIO.scopes)


def test_configurable_plan_only_where_allowed() -> None:
    addon = build_manifest(CLOCKIFY_ADDON, addon_key="k1", base_url="https://a.example", plan="PRO")
    studio = build_manifest(API_STUDIO, addon_key="k2", base_url="https://a.example", plan="PRO")
    assert addon.minimal_subscription_plan == "PRO"
    assert studio.minimal_subscription_plan == "STANDARD"


@pytest.mark.skipif(not SHARED_SCHEMA.is_file(), reason="the shared reference folder is not beside this checkout")
def test_bundled_schema_is_the_reference_copy() -> None:
    assert json.loads(SHARED_SCHEMA.read_text()) == SCHEMA


@pytest.mark.skipif(not (SHARED / "samples").is_dir(), reason="the shared reference folder is not beside this checkout")
def test_sample_bodies_are_the_reference_copies() -> None:
    reference = {p.name: json.loads(p.read_text()) for p in (SHARED / "samples").glob("*.json")}
    copies = {p.name: json.loads(p.read_text()) for p in SAMPLE_COPIES.glob("*.json")}
    assert copies == reference


def test_schema_events_match_the_catalog() -> None:
    assert set(SCHEMA["definitions"]["webhook"]["properties"]["event"]["enum"]) == set(ALL_EVENTS)
    assert set(SCHEMA["definitions"]["scope"]["enum"]) == set(ALL_SCOPES)
