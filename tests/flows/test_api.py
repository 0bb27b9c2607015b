"""`/api/flows`: validation with locations, permissions, secrets, tier rules, workspace isolation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from sqlalchemy import select

import api_studio.app
import api_studio.settings
from clockify_core.flows.models import Flow
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import AddonHarness, installed_addon
from tests.flows.conftest import admin, create_flow, member, runs_of, settle

ON_ENTRY = {"events": ["NEW_TIME_ENTRY"]}


def _flow(**overrides: Any) -> dict[str, Any]:
    return {"name": "f", "trigger": ON_ENTRY, **overrides}


async def _problem(addon: AddonHarness, body: dict[str, Any], status: int = 422) -> dict[str, Any]:
    response = await addon.client.post("/api/flows", json=body, headers=admin(addon))
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    return problem


INVALID: list[tuple[dict[str, Any], str, str]] = [
    (_flow(conditions={"all": [{"path": "$.a", "op": "eq", "value": 1}, {"path": "$.a[", "op": "eq", "value": 1}]}),
     "body.conditions.all.1.path", "bad_path"),
    (_flow(conditions={"any": [{"path": "$.a", "op": "equals", "value": 1}]}), "body.conditions.any.0.op",
     "bad_operator"),
    (_flow(conditions={"not": {"path": "$.a", "op": "regex", "value": "(unclosed"}}), "body.conditions.not.value",
     "bad_regex"),
    (_flow(conditions={"path": "$.d", "op": "gt", "value": "ten hours", "as": "duration"}),
     "body.conditions.value", "bad_value"),
    (_flow(conditions={"path": "$nope.x", "op": "exists"}), "body.conditions.path", "bad_path"),
    (_flow(conditions={"all": [{"path": "$.a", "op": "eq", "value": 1, "extra": 2}]}),
     "body.conditions.all.0.extra", "invalid"),
    (_flow(actions=[{"type": "clockify_api", "operation_id": "noSuchOperation"}]),
     "body.actions.0.operation_id", "unknown_operation"),
    (_flow(actions=[{"type": "clockify_api", "operation_id": "getTimeEntry"}]), "body.actions.0.path.id", "missing"),
    (_flow(actions=[{"type": "clockify_api", "operation_id": "getTimeEntry", "path": {"id": "{{ $.id }}",
                                                                                       "workspaceId": "other"}}]),
     "body.actions.0.path.workspaceId", "invalid"),
    (_flow(actions=[{"type": "set_variable", "name": "x", "value": {"a": ["{{ $.a[ }}"]}}]),
     "body.actions.0.value.a.0", "bad_template"),
    (_flow(actions=[{"type": "http_request", "url": "https://{{ $.host }}/hook"}]), "body.actions.0.url", "bad_url"),
    (_flow(actions=[{"type": "http_request", "url": "http://169.254.169.254/latest/meta-data"}]),
     "body.actions.0.url", "ssrf"),
    (_flow(actions=[{"type": "http_request", "url": "https://example.com/x", "headers": {"Host": "evil"}}]),
     "body.actions.0.headers.Host", "invalid"),
    (_flow(actions=[{"type": "stop", "when": {"path": "$.x", "op": "like", "value": 1}}]),
     "body.actions.0.when.op", "bad_operator"),
    (_flow(trigger={"events": []}), "body.trigger.events", "missing"),
    (_flow(trigger={"custom_source": "missing-source"}), "body.trigger.custom_source", "unknown_source"),
    ({"trigger": ON_ENTRY}, "body.name", "missing"),
]


async def test_invalid_definitions_are_422_with_the_location(uw: AddonHarness) -> None:
    # One service for every case: installing one per case would cost seconds each.
    for body, location, kind in INVALID:
        problem = await _problem(uw, body)
        assert problem["status"] == 422
        assert problem["type"].endswith("validation-failed")
        assert (location, kind) in {(e["location"], e["kind"]) for e in problem["errors"]}, (location, problem["errors"])
    async with uw.runtime.sessions() as session:
        assert (await session.execute(select(Flow))).scalars().all() == []


@pytest.mark.parametrize(
    ("action", "kind", "says"),
    [
        pytest.param({"type": "clockify_api"}, "missing", "operation_id is required", id="absent"),
        pytest.param({"type": "clockify_api", "operation_id": ""}, "missing", "operation_id is required", id="empty"),
        pytest.param({"type": "clockify_api", "operation_id": "   "}, "missing", "operation_id is required", id="blank"),
        pytest.param({"type": "clockify_api", "operation_id": 5}, "invalid", "must be a string", id="number"),
    ],
)
async def test_a_clockify_api_action_without_an_operation_id_is_422_saying_so(
    uw: AddonHarness, action: dict[str, Any], kind: str, says: str
) -> None:
    # Was "unknown operationId None": a reader could not tell the field was simply missing.
    problem = await _problem(uw, _flow(actions=[action]))
    errors = {e["location"]: e for e in problem["errors"]}
    error = errors["body.actions.0.operation_id"]
    assert error["kind"] == kind
    assert says in error["message"]
    assert "None" not in error["message"]


async def test_crud_enable_disable_and_permissions(uw: AddonHarness) -> None:
    body = _flow(name="tag long entries", conditions={"path": "$.billable", "op": "eq", "value": True},
                 actions=[{"type": "stop", "reason": "enough"}])
    forbidden = await uw.client.post("/api/flows", json=body, headers=member(uw))
    assert forbidden.status_code == 403
    assert (await uw.client.get("/api/flows")).status_code == 401
    flow = await create_flow(uw, body)
    assert flow["enabled"]
    assert flow["version"] == 1
    assert flow["actions"][0]["id"] == "step1"
    listed = (await uw.client.get("/api/flows", headers=member(uw))).json()
    assert [f["id"] for f in listed] == [flow["id"]]
    read = (await uw.client.get(f"/api/flows/{flow['id']}", headers=member(uw))).json()
    assert read["conditions"] == body["conditions"]

    changed = {**body, "name": "renamed", "max_runs_per_minute": 5}
    assert (await uw.client.put(f"/api/flows/{flow['id']}", json=changed, headers=member(uw))).status_code == 403
    updated = (await uw.client.put(f"/api/flows/{flow['id']}", json=changed, headers=admin(uw))).json()
    assert updated["name"] == "renamed"
    assert updated["version"] == 2
    assert updated["max_runs_per_minute"] == 5

    off = (await uw.client.post(f"/api/flows/{flow['id']}/disable", headers=admin(uw))).json()
    assert off["enabled"] is False
    assert off["disabled_reason"]
    on = (await uw.client.post(f"/api/flows/{flow['id']}/enable", headers=admin(uw))).json()
    assert on["enabled"] is True
    assert on["disabled_reason"] is None
    # Runs hold events and API answers: admins only.
    refused = await uw.client.get(f"/api/flows/{flow['id']}/runs", headers=member(uw))
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    runs = (await uw.client.get(f"/api/flows/{flow['id']}/runs", headers=admin(uw))).json()
    assert runs == {"runs": [], "next_before_id": None}

    assert (await uw.client.delete(f"/api/flows/{flow['id']}", headers=member(uw))).status_code == 403
    assert (await uw.client.delete(f"/api/flows/{flow['id']}", headers=admin(uw))).status_code == 204
    assert (await uw.client.get(f"/api/flows/{flow['id']}", headers=admin(uw))).status_code == 404


async def test_secret_headers_are_encrypted_masked_and_kept(uw: AddonHarness) -> None:
    action = {"id": "notify", "type": "http_request", "url": "https://hooks.example.com/services/T1",
              "headers": {"Authorization": {"secret": "Bearer s3cr3t-value"}, "X-Plain": "{{ $.id }}"}}
    flow = await create_flow(uw, _flow(actions=[action]))
    shown = flow["actions"][0]["headers"]
    assert shown == {"Authorization": {"secret": "********"}, "X-Plain": "{{ $.id }}"}
    async with uw.runtime.sessions() as session:
        stored = await session.get(Flow, flow["id"])
        assert stored is not None
        raw = orjson.dumps(stored.actions).decode()
        encrypted = stored.actions[0]["headers"]["Authorization"]["secret_encrypted"]
    assert "s3cr3t" not in raw
    assert uw.runtime.cipher.decrypt(encrypted) == "Bearer s3cr3t-value"

    # Sending the mask back keeps the stored secret; a new value replaces it.
    again = (await uw.client.put(f"/api/flows/{flow['id']}", json=_flow(actions=flow["actions"]),
                                 headers=admin(uw))).json()
    async with uw.runtime.sessions() as session:
        kept = await session.get(Flow, flow["id"])
        assert kept is not None
        assert uw.runtime.cipher.decrypt(kept.actions[0]["headers"]["Authorization"]["secret_encrypted"]) == (
            "Bearer s3cr3t-value"
        )
    assert again["version"] == 2
    replaced = {**action, "headers": {"Authorization": {"secret": "Bearer rotated"}}}
    await uw.client.put(f"/api/flows/{flow['id']}", json=_flow(actions=[replaced]), headers=admin(uw))
    async with uw.runtime.sessions() as session:
        rotated = await session.get(Flow, flow["id"])
        assert rotated is not None
        assert uw.runtime.cipher.decrypt(rotated.actions[0]["headers"]["Authorization"]["secret_encrypted"]) == (
            "Bearer rotated"
        )
    # A client cannot plant ciphertext, nor keep a secret that was never stored.
    planted = {**action, "headers": {"Authorization": {"secret_encrypted": encrypted}}}
    assert (await _problem(uw, _flow(actions=[planted])))["errors"][0]["location"] == "body.actions.0.headers.Authorization"
    masked = {**action, "id": "other", "headers": {"Authorization": {"secret": "********"}}}
    assert (await _problem(uw, _flow(actions=[masked])))["errors"][0]["kind"] == "missing"


async def test_a_kept_secret_never_follows_a_changed_url(uw: AddonHarness) -> None:
    """Another admin cannot redirect a stored secret: a new URL needs the secret entered again."""
    action = {"id": "notify", "type": "http_request", "url": "https://hooks.example.com/services/T1",
              "headers": {"Authorization": {"secret": "Bearer s3cr3t-value"}}}
    flow = await create_flow(uw, _flow(actions=[action]))
    url = f"/api/flows/{flow['id']}"
    for elsewhere in ("https://collector.example.net/services/T1", "https://hooks.example.com/services/T2"):
        moved = {**flow["actions"][0], "url": elsewhere}  # the masked secret, as the editor sends it back
        r = await uw.client.put(url, json=_flow(actions=[moved]), headers=admin(uw))
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        [error] = r.json()["errors"]
        assert error["location"] == "body.actions.0.headers.Authorization"
        assert "enter the secret again" in error["message"]
    async with uw.runtime.sessions() as session:
        unchanged = await session.get(Flow, flow["id"])
        assert unchanged is not None
        assert unchanged.version == 1
        assert unchanged.actions[0]["url"] == action["url"]

    # Entering the secret again moves it; the mask on the new URL is then kept as before.
    moved = {**action, "url": "https://collector.example.net/services/T1",
             "headers": {"Authorization": {"secret": "Bearer for-the-collector"}}}
    saved = await uw.client.put(url, json=_flow(actions=[moved]), headers=admin(uw))
    assert saved.status_code == 200, saved.text
    again = await uw.client.put(url, json=_flow(actions=saved.json()["actions"]), headers=admin(uw))
    assert again.status_code == 200, again.text
    async with uw.runtime.sessions() as session:
        stored = await session.get(Flow, flow["id"])
        assert stored is not None
        assert stored.actions[0]["url"] == "https://collector.example.net/services/T1"
        assert uw.runtime.cipher.decrypt(stored.actions[0]["headers"]["Authorization"]["secret_encrypted"]) == (
            "Bearer for-the-collector"
        )


@pytest.fixture
async def studio(simulator: InProcessSimulator, pg_url: str) -> AsyncIterator[AddonHarness]:
    async with installed_addon(
        simulator, api_studio.app.create_app, api_studio.settings.Settings, db_url=pg_url
    ) as addon:
        await addon.process()
        yield addon


TIER_REFUSED: list[tuple[dict[str, Any], str]] = [
    (_flow(actions=[{"type": "http_request", "url": "https://hooks.example.com/x"}]), "body.actions.0.type"),
    (_flow(actions=[{"type": "clockify_api", "operation_id": "updateTimeEntry", "path": {"id": "{{ $.id }}"},
                     "body": {"start": "{{ $.timeInterval.start }}"}}]), "body.actions.0.operation_id"),
    (_flow(actions=[{"type": "clockify_api", "operation_id": "createNewTag", "body": {"name": "x"}}]),
     "body.actions.0.operation_id"),
    (_flow(trigger={"custom_source": "abc"}), "body.trigger.custom_source"),
    (_flow(trigger={"events": ["NEW_TIME_ENTRY", "EXPENSE_CREATED"]}), "body.trigger.events.1"),
]


async def test_api_studio_tier_refuses_what_it_may_not_do(studio: AddonHarness) -> None:
    for body, location in TIER_REFUSED:
        problem = await _problem(studio, body, status=403)
        assert problem["type"].endswith("tier-policy")
        assert location in {e["location"] for e in problem["errors"]}, (location, problem["errors"])


async def test_api_studio_may_read_with_its_scopes(studio: AddonHarness, simulator: InProcessSimulator) -> None:
    flow = await create_flow(studio, _flow(actions=[
        {"type": "clockify_api", "operation_id": "getTimeEntry", "path": {"id": "{{ $.id }}"}, "save_as": "entry"},
        {"type": "set_variable", "name": "project", "value": "{{ $vars.entry.projectId }}"},
    ]))
    await simulator.owner_client().post(
        f"/api/v1/workspaces/{simulator.workspace.id}/time-entries",
        json={"start": "2025-06-01T08:00:00Z", "end": "2025-06-01T09:00:00Z", "description": "read me"},
    )
    await settle(studio)
    runs = await runs_of(studio, flow["id"])
    assert [r.status for r in runs] == ["SUCCEEDED"]
    assert runs[0].actions[0]["response"]["status"] == 200
    assert runs[0].actions[0]["request"]["method"] == "GET"


async def test_a_flow_of_workspace_a_never_sees_or_fires_on_b(uw: AddonHarness, simulator: InProcessSimulator) -> None:
    ws_a = uw.workspace_id
    ws_b = next(w for w in simulator.sim.workspaces.values() if w.id != ws_a)
    inst_b = await simulator.install(uw.settings.base_url, workspace_id=ws_b.id)
    await settle(uw)
    token_b = {"X-Addon-Token": inst_b.signer.user_token(
        ws_b.id, inst_b.addon_id, user_id=ws_b.owner_id, backend_url=simulator.sim.urls.backend,
        reports_url=simulator.sim.urls.reports, workspace_role="OWNER")}
    flow_a = await create_flow(uw, _flow(name="A"))
    created_b = await uw.client.post("/api/flows", json=_flow(name="B"), headers=token_b)
    assert created_b.status_code == 201
    flow_b = created_b.json()
    assert flow_b["workspace_id"] == ws_b.id

    assert [f["id"] for f in (await uw.client.get("/api/flows", headers=token_b)).json()] == [flow_b["id"]]
    for method, path in (("GET", ""), ("PUT", ""), ("DELETE", ""), ("POST", "/disable"), ("GET", "/runs")):
        response = await uw.client.request(method, f"/api/flows/{flow_a['id']}{path}", headers=token_b,
                                           json=_flow() if method == "PUT" else None)
        assert response.status_code == 404, (method, path, response.text)

    entry = {"start": "2025-06-01T08:00:00Z", "end": "2025-06-01T09:00:00Z", "description": "in B"}
    await simulator.owner_client(ws_b).post(f"/api/v1/workspaces/{ws_b.id}/time-entries", json=entry)
    await settle(uw)
    assert await runs_of(uw, flow_a["id"]) == []
    assert [r.workspace_id for r in await runs_of(uw, flow_b["id"])] == [ws_b.id]

    await simulator.owner_client().post(f"/api/v1/workspaces/{ws_a}/time-entries", json={**entry, "description": "in A"})
    await settle(uw)
    assert [r.workspace_id for r in await runs_of(uw, flow_a["id"])] == [ws_a]
    assert len(await runs_of(uw, flow_b["id"])) == 1
    # B cannot dry-run A's past event either.
    event_a = (await runs_of(uw, flow_a["id"]))[0].inbox_event_id
    dry = await uw.client.post(f"/api/flows/{flow_b['id']}/dry-run", json={"inbox_event_id": event_a}, headers=token_b)
    assert dry.status_code == 404
