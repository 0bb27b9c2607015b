"""A recording add-on (a stand-in for a third party) and helpers for the simulator tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response

from clockify_core.simulator import EVENTS, SimulatorConfig
from clockify_core.simulator.testing import InProcessSimulator, small_config

ADDON_URL = "http://addon.test"
ADDON_KEY = "recording-addon"


def manifest(*, events: tuple[str, ...] = EVENTS, scopes: list[str] | None = None, base_url: str = ADDON_URL) -> dict[str, Any]:
    return {
        "schemaVersion": "1.5",
        "key": ADDON_KEY,
        "name": "Recording add-on",
        "baseUrl": base_url,
        "minimalSubscriptionPlan": "FREE",
        "scopes": scopes if scopes is not None else ["TIME_ENTRY_READ", "TIME_ENTRY_WRITE", "PROJECT_READ", "USER_READ",
                                                     "WORKSPACE_READ", "REPORTS_READ", "TAG_READ", "CLIENT_READ"],
        "lifecycle": [{"type": t, "path": f"/lifecycle/{t.lower()}"}
                      for t in ("INSTALLED", "DELETED", "SETTINGS_UPDATED", "STATUS_CHANGED")],
        "webhooks": [{"event": e, "path": f"/webhooks/{e.lower()}"} for e in events],
        "components": [{"type": "sidebar", "accessLevel": "ADMINS", "path": "/ui", "label": "Recorder"}],
        "settings": {"tabs": [{"id": "general", "name": "General", "settings": [
            {"id": "threshold", "name": "Threshold", "type": "NUMBER", "value": 8, "accessLevel": "ADMINS"},
            {"id": "notify", "name": "Notify", "type": "CHECKBOX", "value": False, "accessLevel": "ADMINS"},
        ], "groups": [{"id": "who", "title": "Who", "settings": [
            {"id": "approver", "name": "Approver", "type": "USER_DROPDOWN_SINGLE", "value": "5a0ab5acb07987125438b60f", "accessLevel": "ADMINS"},
        ]}]}]},
    }


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class RecordingAddon:
    manifest: dict[str, Any]
    app: FastAPI = field(init=False)
    lifecycle: list[Call] = field(default_factory=list)
    webhooks: list[Call] = field(default_factory=list)
    # Paths answered with these statuses, consumed one per call (then 200).
    scripted: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        app = FastAPI()

        @app.get("/manifest")
        async def get_manifest() -> dict[str, Any]:
            return self.manifest

        @app.post("/lifecycle/{kind}")
        async def lifecycle(kind: str, request: Request) -> Response:
            self.lifecycle.append(Call(request.url.path, dict(request.headers), await request.json()))
            return Response(status_code=self._status(request.url.path))

        @app.post("/webhooks/{name}")
        async def webhook(name: str, request: Request) -> Response:
            self.webhooks.append(Call(request.url.path, dict(request.headers), await request.json()))
            return Response(status_code=self._status(request.url.path))

        @app.post("/hooks/{name}")
        async def runtime_hook(name: str, request: Request) -> Response:
            self.webhooks.append(Call(request.url.path, dict(request.headers), await request.json()))
            return Response(status_code=200)

        self.app = app

    def _status(self, path: str) -> int:
        queue = self.scripted.get(path)
        return queue.pop(0) if queue else 200

    def lifecycle_of(self, kind: str) -> list[Call]:
        return [c for c in self.lifecycle if c.path == f"/lifecycle/{kind.lower()}"]


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    # The recording add-on declares every event, above Clockify's cap of 10, to see each delivered.
    return small_config(addon_webhook_cap=len(EVENTS))


@pytest.fixture
def addon() -> RecordingAddon:
    return RecordingAddon(manifest())


@pytest.fixture
async def installed(simulator: InProcessSimulator, addon: RecordingAddon) -> AsyncIterator[tuple[InProcessSimulator, RecordingAddon, Any]]:
    await simulator.mount_addon(ADDON_URL, addon.app)
    inst = await simulator.install(ADDON_URL)
    return simulator, addon, inst
