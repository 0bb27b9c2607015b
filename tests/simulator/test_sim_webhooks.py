"""Webhook delivery: all 50 events, headers, duplicates, reordering, retries, the Webhooks API, the change feed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
import pytest

from clockify_core.simulator import EVENTS, DeliverySettings
from clockify_core.simulator.testing import InProcessSimulator, in_process_simulator, small_config
from tests.simulator.conftest import ADDON_URL, RecordingAddon, manifest

SAMPLES = Path(__file__).parents[1] / "fixtures" / "samples"  # copies of ../shared/clockify/samples


async def test_every_event_is_delivered_with_headers(installed: tuple[InProcessSimulator, RecordingAddon, Any]) -> None:
    simulator, addon, inst = installed
    control = simulator.client()
    for event in EVENTS:
        r = await control.post("/__sim/fire", json={"event": event})
        assert r.status_code == 200, (event, r.text)
        assert r.json()["queued"] >= 1, event
    await simulator.drain()
    received = {c.headers["clockify-webhook-event-type"] for c in addon.webhooks}
    assert received == set(EVENTS)
    token_by_path = {f"/webhooks/{w.event.lower()}": w.token for w in inst.webhooks}
    import json

    for call in addon.webhooks:
        event = call.headers["clockify-webhook-event-type"]
        assert call.path == f"/webhooks/{event.lower()}"
        assert call.headers["clockify-signature"] == token_by_path[call.path]
        claims = jwt.decode(call.headers["clockify-signature"], simulator.sim.keys.public_pem, algorithms=["RS256"])
        assert claims["workspaceId"] == simulator.workspace.id
        assert claims["addonId"] == inst.addon_id
        sample_name = "TIME_OFF_REQUESTED" if event == "TIME_OFF_REQUEST_UPDATED" else event
        sample = json.loads((SAMPLES / f"{sample_name}.json").read_text())
        assert set(call.body) == set(sample), event
    log = (await control.get("/__sim/deliveries")).json()
    assert log["pending"] == 0
    assert {d["statusCode"] for d in log["deliveries"]} == {200}


async def test_events_change_the_data(installed: tuple[InProcessSimulator, RecordingAddon, Any]) -> None:
    simulator, _addon, inst = installed
    ws = simulator.workspace
    api = simulator.client(token=inst.token)
    created = (await simulator.client().post("/__sim/fire", json={"event": "NEW_TIME_ENTRY"})).json()["body"]
    got = await api.get(f"/api/v1/workspaces/{ws.id}/time-entries/{created['id']}")
    assert got.status_code == 200
    assert got.json()["description"] == created["description"]
    deleted = (await simulator.client().post("/__sim/fire", json={"event": "TIME_ENTRY_DELETED",
                                                                  "entityId": created["id"]})).json()["body"]
    assert deleted["id"] == created["id"]
    assert (await api.get(f"/api/v1/workspaces/{ws.id}/time-entries/{created['id']}")).status_code == 404
    unknown = await simulator.client().post("/__sim/fire", json={"event": "NO_SUCH_EVENT"})
    assert unknown.status_code == 400


async def test_api_writes_send_webhooks_and_feed_the_change_feed(installed: tuple[InProcessSimulator, RecordingAddon, Any]) -> None:
    simulator, addon, inst = installed
    ws = simulator.workspace
    api = simulator.client(token=inst.token)
    project = next(p for p in ws.projects.values() if not p["archived"])
    r = await api.post(f"/api/v1/workspaces/{ws.id}/time-entries", json={
        "start": "2025-06-01T08:00:00Z", "end": "2025-06-01T09:30:00Z", "projectId": project["id"],
        "description": "Written through the API"})
    assert r.status_code == 201
    entry = r.json()
    assert entry["timeInterval"]["duration"] == "PT1H30M"
    r = await api.put(f"/api/v1/workspaces/{ws.id}/time-entries/{entry['id']}", json={
        "start": "2025-06-01T08:00:00Z", "end": "2025-06-01T10:00:00Z", "description": "Edited"})
    assert r.status_code == 200
    assert r.json()["projectId"] is None
    assert (await api.delete(f"/api/v1/workspaces/{ws.id}/time-entries/{entry['id']}")).status_code == 204
    await simulator.drain()
    events = [c.headers["clockify-webhook-event-type"] for c in addon.webhooks]
    assert events == ["NEW_TIME_ENTRY", "TIME_ENTRY_UPDATED", "TIME_ENTRY_DELETED"]
    window = {"start": "2025-06-01T00:00:00Z", "end": "2030-01-01T00:00:00Z"}
    updated = await api.get(f"/api/v1/workspaces/{ws.id}/entities/updated", params={"type": "TIME_ENTRY"} | window)
    assert entry["id"] not in {d["id"] for d in updated.json()}
    deleted = await api.get(f"/api/v1/workspaces/{ws.id}/entities/deleted", params={"type": "TIME_ENTRY"} | window)
    docs = deleted.json()["response"]
    assert entry["id"] in {d["id"] for d in docs}
    assert next(d for d in docs if d["id"] == entry["id"])["document"]["description"] == "Edited"
    # A later edit of another entry shows up in entities/updated.
    other = ws.entries.id_of(ws.entries.by_start.rows[-10])
    body = (await api.get(f"/api/v1/workspaces/{ws.id}/time-entries/{other}")).json()
    await api.put(f"/api/v1/workspaces/{ws.id}/time-entries/{other}", json={
        "start": body["timeInterval"]["start"], "end": body["timeInterval"]["end"], "description": "changed"})
    updated = await api.get(f"/api/v1/workspaces/{ws.id}/entities/updated", params={"type": "TIME_ENTRY"} | window)
    assert other in {d["id"] for d in updated.json()}


async def _run_with(settings: DeliverySettings, script: dict[str, list[int]] | None = None,
                    fire: int = 12) -> tuple[RecordingAddon, list[dict[str, Any]]]:
    async with in_process_simulator(small_config(delivery=settings)) as simulator:
        addon = RecordingAddon(manifest(events=("NEW_TAG",)))
        addon.scripted.update(script or {})
        await simulator.mount_addon(ADDON_URL, addon.app)
        await simulator.install(ADDON_URL)
        for _ in range(fire):
            await simulator.client().post("/__sim/fire", json={"event": "NEW_TAG"})
        await simulator.drain()
        log = (await simulator.client().get("/__sim/deliveries")).json()["deliveries"]
        return addon, log


async def test_in_order_by_default() -> None:
    addon, _ = await _run_with(DeliverySettings())
    names = [c.body["name"] for c in addon.webhooks]
    assert names == sorted(names)
    assert len(names) == 12


async def test_duplicates() -> None:
    addon, log = await _run_with(DeliverySettings(duplicate_rate=0.5))
    assert 12 < len(addon.webhooks) < 24
    assert sum(d["duplicate"] for d in log) == len(addon.webhooks) - 12
    assert len({c.body["id"] for c in addon.webhooks}) == 12


async def test_reordering() -> None:
    addon, _ = await _run_with(DeliverySettings(reorder_window=4, reorder_flush_ms=20))
    names = [c.body["name"] for c in addon.webhooks]
    assert sorted(names) == sorted(set(names))
    assert len(names) == 12
    assert names != sorted(names)


async def test_retries_on_non_2xx() -> None:
    settings = DeliverySettings(max_attempts=3, retry_backoff_ms=5)
    addon, log = await _run_with(settings, {"/webhooks/new_tag": [500, 503]}, fire=1)
    assert len(addon.webhooks) == 3
    [delivery] = log
    assert [a["statusCode"] for a in delivery["attempts"]] == [500, 503, 200]
    assert delivery["status"] == "delivered"
    addon, log = await _run_with(DeliverySettings(max_attempts=2, retry_backoff_ms=5),
                                 {"/webhooks/new_tag": [500, 500]}, fire=1)
    assert log[0]["status"] == "failed"
    assert len(log[0]["attempts"]) == 2


@pytest.mark.parametrize("creator", ["addon", "api_key"])
async def test_webhooks_api(installed: tuple[InProcessSimulator, RecordingAddon, Any], creator: str) -> None:
    simulator, addon, inst = installed
    ws = simulator.workspace
    api = simulator.client(token=inst.token) if creator == "addon" else simulator.owner_client()
    url = f"/api/v1/workspaces/{ws.id}/webhooks"
    r = await api.post(url, json={"name": "runtime", "url": f"{ADDON_URL}/hooks/tag", "webhookEvent": "NEW_TAG",
                                  "triggerSource": [ws.id], "triggerSourceType": "WORKSPACE_ID"})
    assert r.status_code == 201
    hook = r.json()
    assert hook["authToken"]
    assert hook["webhookEvent"] == "NEW_TAG"
    assert (await api.post(url, json={"url": "x"})).status_code == 400
    listed = (await api.get(url, params={"type": "USER_CREATED"})).json()
    assert [h["id"] for h in listed["webhooks"]] == [hook["id"]]
    addon_hooks = (await api.get(url, params={"type": "ADDON"})).json()["webhooks"]
    assert len(addon_hooks) == len(inst.webhooks)
    await simulator.client().post("/__sim/fire", json={"event": "NEW_TAG"})
    await simulator.drain()
    runtime = [c for c in addon.webhooks if c.path == "/hooks/tag"]
    assert len(runtime) == 1
    assert runtime[0].headers["clockify-signature"] == hook["authToken"]
    new = (await api.patch(f"{url}/{hook['id']}/token")).json()
    assert new["authToken"] != hook["authToken"]
    logs = await api.post(f"{url}/{hook['id']}/logs", json={})
    assert logs.status_code == 200
    assert logs.json()[0]["statusCode"] == 200
    assert (await api.delete(f"{url}/{hook['id']}")).status_code == 200
    assert (await api.get(f"{url}/{hook['id']}")).status_code == 404


async def test_traffic_mode(installed: tuple[InProcessSimulator, RecordingAddon, Any]) -> None:
    simulator, addon, _ = installed
    before = simulator.workspace.entries.rows_total
    result = (await simulator.client().post("/__sim/traffic", json={"rate": 200, "duration": 0.5, "wait": True})).json()
    assert result["total"] == 100
    assert not result["running"]
    await simulator.drain()
    assert simulator.workspace.entries.rows_total > before
    kinds = {c.headers["clockify-webhook-event-type"] for c in addon.webhooks}
    assert {"NEW_TIME_ENTRY", "TIME_ENTRY_UPDATED", "TIME_ENTRY_DELETED"} <= kinds
