"""Capabilities: what each declares is real, and a service is exactly the sum of its list.

A service drops a capability by removing it from ``CAPABILITIES``: its routes, handlers,
loops and manifest entries go with it, and nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI

import api_studio.app
import api_studio.settings
import clockify_addon.app
import universal_webhook.app
from clockify_core import kit
from clockify_core.config import ServiceSettings
from clockify_core.db.base import Base
from clockify_core.jobs.models import JobKind
from clockify_core.observability.metrics import Metrics
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import installed_addon

SERVICES = (api_studio.app, universal_webhook.app, clockify_addon.app)
EVERY = tuple({c.name: c for s in SERVICES for c in s.CAPABILITIES}.values())


def test_every_capability_declares_what_exists() -> None:
    blocks = set(ServiceSettings.model_fields)
    families = {m.name for m in Metrics(service="t").registry.collect()}
    tables = set(Base.metadata.tables)
    for capability in EVERY:
        assert set(capability.settings) <= blocks, capability.name
        # Counters are collected without their _total suffix.
        assert {f.removesuffix("_total") for f in capability.metrics} <= families, capability.name
        assert {m.__tablename__ for m in capability.models} <= tables, capability.name


def test_every_job_kind_and_model_has_one_owner_in_each_service() -> None:
    for service in SERVICES:
        kinds = [k for c in service.CAPABILITIES for k in c.job_handlers]
        assert sorted(kinds) == sorted(JobKind)
    owned = [m for c in EVERY for m in c.models]
    assert len(owned) == len(set(owned))


def test_a_capability_listed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        kit.Composition((kit.HEALTH, kit.HEALTH))


def _without(create: Callable[..., FastAPI], *dropped: kit.Capability) -> Callable[..., FastAPI]:
    capabilities = tuple(c for c in api_studio.app.CAPABILITIES if c not in dropped)

    def create_app(settings: ServiceSettings, **options: Any) -> FastAPI:
        return kit.create_addon_app(settings, api_studio.app.PROFILE, capabilities, **options)

    return create_app


async def test_dropping_flows_removes_its_routes_settings_handler_and_loops(
    simulator: InProcessSimulator, db_url: str
) -> None:
    create = _without(api_studio.app.create_app, kit.FLOWS)
    async with installed_addon(
        simulator, create, api_studio.settings.Settings, db_url=db_url, worker={"enabled": True}
    ) as addon:
        manifest = (await addon.client.get("/manifest")).json()
        ids = [s["id"] for tab in manifest["settings"]["tabs"] for s in tab["settings"]]
        assert "sync_enabled" in ids
        assert "flows_enabled" not in ids
        assert (await addon.client.get("/api/flows")).status_code == 404
        assert type(addon.runtime.event_handlers[0]).__name__ == "MirrorHandler"
        assert len(addon.runtime.event_handlers) == 1
        loops = {t.get_name() for t in addon.runtime.tasks}
        assert "inbox-0" in loops
        assert not any(name.startswith("flows") for name in loops)


async def test_the_full_list_serves_everything(simulator: InProcessSimulator, db_url: str) -> None:
    async with installed_addon(
        simulator, api_studio.app.create_app, api_studio.settings.Settings, db_url=db_url
    ) as addon:
        manifest = (await addon.client.get("/manifest")).json()
        ids = [s["id"] for tab in manifest["settings"]["tabs"] for s in tab["settings"]]
        assert ids[0] == "sync_enabled"
        assert ids[-1] == "flows_enabled"
        assert [c["path"] for c in manifest["components"]] == ["/ui"]
        assert [type(h).__name__ for h in addon.runtime.event_handlers] == ["MirrorHandler", "FlowEngine"]


def test_each_service_serves_the_manifest_it_served_before_capabilities() -> None:
    from clockify_core.manifest.builder import build_manifest

    for service in SERVICES:
        parts = kit.Composition(service.CAPABILITIES).manifest()
        composed = build_manifest(service.PROFILE, addon_key="my-addon", base_url="https://a.example", parts=parts)
        standard = build_manifest(service.PROFILE, addon_key="my-addon", base_url="https://a.example")
        assert composed.to_wire() == standard.to_wire()
