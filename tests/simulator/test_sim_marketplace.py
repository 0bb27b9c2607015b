"""install / uninstall / settings-update / status-change send exactly what Clockify sends (docs/clockify.md#lifecycle)."""

from __future__ import annotations

from typing import Any

import pytest

from clockify_core.errors import BadRequest, UpstreamError
from clockify_core.simulator import EVENTS
from clockify_core.simulator.testing import InProcessSimulator
from tests.simulator.conftest import ADDON_URL, RecordingAddon, manifest


async def test_installed_payload(installed: tuple[InProcessSimulator, RecordingAddon, Any]) -> None:
    simulator, addon, inst = installed
    ws = simulator.workspace
    [call] = addon.lifecycle_of("INSTALLED")
    assert call.headers["content-type"] == "application/json"
    assert call.headers["x-addon-lifecycle-token"]
    body = call.body
    assert list(body) == ["addonId", "authToken", "workspaceId", "asUser", "apiUrl", "addonUserId", "webhooks"]
    assert body["addonId"] == inst.addon_id
    assert body["authToken"] == inst.token
    assert body["workspaceId"] == ws.id
    assert body["asUser"] == ws.owner_id
    assert body["apiUrl"] == "http://clockify.test/api"
    assert len(body["addonUserId"]) == 24
    assert body["addonUserId"] not in ws.users
    assert len(body["webhooks"]) == len(EVENTS)
    first = body["webhooks"][0]
    assert first == {"path": f"{ADDON_URL}/webhooks/{EVENTS[0].lower()}", "webhookType": "ADDON",
                     "authToken": inst.webhooks[0].token}
    assert len({w["authToken"] for w in body["webhooks"]}) == len(EVENTS)  # one token per webhook


async def test_settings_status_and_uninstall(installed: tuple[InProcessSimulator, RecordingAddon, Any]) -> None:
    simulator, addon, inst = installed
    ws = simulator.workspace
    control = simulator.client()
    r = await control.post("/__sim/settings-update", json={"addonId": inst.addon_id,
                                                           "settings": [{"id": "threshold", "value": 12}]})
    assert r.status_code == 200
    [settings] = addon.lifecycle_of("SETTINGS_UPDATED")
    assert settings.body == {"workspaceId": ws.id, "addonId": inst.addon_id, "settings": [
        {"id": "threshold", "name": "Threshold", "value": 12}, {"id": "notify", "name": "Notify", "value": False},
        {"id": "approver", "name": "Approver", "value": ws.owner_id}]}
    # The add-on reads and patches its settings through the API.
    api = simulator.client(token=inst.token)
    tree = (await api.get(f"/api/addon/workspaces/{ws.id}/settings")).json()
    assert tree["tabs"][0]["settings"][0]["value"] == 12
    patched = await api.patch(f"/api/addon/workspaces/{ws.id}/settings", json=[{"id": "notify", "value": True}])
    assert patched.json()["tabs"][0]["settings"][1]["value"] is True
    assert (await api.patch(f"/api/addon/workspaces/{ws.id}/settings", json=[{"id": "nope", "value": 1}])).status_code == 400

    await control.post("/__sim/status-change", json={"addonId": inst.addon_id, "status": "INACTIVE"})
    assert addon.lifecycle_of("STATUS_CHANGED")[-1].body == {"addonId": inst.addon_id, "workspaceId": ws.id,
                                                              "status": "INACTIVE"}
    await control.post("/__sim/fire", json={"event": "NEW_TAG"})
    await simulator.drain()
    assert addon.webhooks == []  # an inactive add-on gets no webhooks
    await control.post("/__sim/status-change", json={"addonId": inst.addon_id, "status": "ACTIVE"})

    r = await control.post("/__sim/uninstall", json={"addonId": inst.addon_id})
    assert r.status_code == 200
    assert addon.lifecycle_of("DELETED")[-1].body == {"addonId": inst.addon_id, "workspaceId": ws.id, "asUser": ws.owner_id}
    assert (await api.get("/api/v1/user")).status_code == 401  # every token of the installation is void


async def test_invalid_manifest_is_refused(simulator: InProcessSimulator) -> None:
    bad = manifest()
    del bad["minimalSubscriptionPlan"]
    bad["webhooks"].append({"event": "NOT_AN_EVENT", "path": "/x"})
    addon = RecordingAddon(bad)
    await simulator.mount_addon(ADDON_URL, addon.app)
    with pytest.raises(BadRequest) as info:
        await simulator.install(ADDON_URL)
    text = " ".join(info.value.extensions["errors"])
    assert "minimalSubscriptionPlan" in text
    assert "NOT_AN_EVENT" in text
    assert addon.lifecycle == []


async def test_failing_installed_hook_aborts(simulator: InProcessSimulator) -> None:
    addon = RecordingAddon(manifest())
    addon.scripted["/lifecycle/installed"] = [500]
    await simulator.mount_addon(ADDON_URL, addon.app)
    with pytest.raises(UpstreamError):
        await simulator.install(ADDON_URL)
    assert simulator.sim.marketplace.installations == {}
    inst = await simulator.install(ADDON_URL)  # a retry installs with fresh tokens
    assert inst.token != addon.lifecycle[0].body["authToken"]


async def test_install_over_the_control_api(simulator: InProcessSimulator, addon: RecordingAddon) -> None:
    await simulator.mount_addon(ADDON_URL, addon.app)
    r = await simulator.client().post("/__sim/install", json={"addonUrl": ADDON_URL + "/manifest"})
    assert r.status_code == 201
    assert r.json()["addonKey"] == "recording-addon"
    again = await simulator.client().post("/__sim/install", json={"addonUrl": ADDON_URL})
    assert again.status_code == 409
