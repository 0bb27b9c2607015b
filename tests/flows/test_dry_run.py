"""Dry-run shows what a flow would do and does none of it."""

from __future__ import annotations

from sqlalchemy import func, select

from clockify_core.flows.models import FlowRun
from clockify_core.openapi.models import ApiCall
from clockify_core.simulator import render
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import AddonHarness
from clockify_core.webhooks.models import InboxEvent
from tests.flows.conftest import LoopbackServer, admin, create_flow, member, new_entry, settle
from tests.flows.test_execution import LONG_WITHOUT_PROJECT, _tag_action


def _clockify_requests(addon: AddonHarness) -> float:
    """Every request the Clockify client sent, as its metrics layer counted them."""
    return sum(
        sample.value
        for metric in addon.runtime.metrics.registry.collect() if metric.name == "api_calls"
        for sample in metric.samples if sample.name == "api_calls_total"
    )


async def _counts(addon: AddonHarness) -> tuple[int, int]:
    async with addon.runtime.sessions() as session:
        runs = await session.scalar(select(func.count()).select_from(FlowRun))
        calls = await session.scalar(select(func.count()).select_from(ApiCall))
    return int(runs or 0), int(calls or 0)


async def test_dry_run_on_a_past_event_has_no_side_effects(
    uw: AddonHarness, simulator: InProcessSimulator, loopback: LoopbackServer
) -> None:
    ws = simulator.workspace
    tag = next(t["id"] for t in ws.tags.values() if t["name"] == "urgent")
    entry = await new_entry(simulator)
    await settle(uw)
    async with uw.runtime.sessions() as session:
        event_id = await session.scalar(select(InboxEvent.id).where(InboxEvent.event_type == "NEW_TIME_ENTRY"))
    flow = await create_flow(uw, {
        "name": "tag and notify", "trigger": {"events": ["NEW_TIME_ENTRY"]}, "conditions": LONG_WITHOUT_PROJECT,
        "actions": [
            _tag_action(tag),
            {"id": "notify", "type": "http_request", "url": f"{loopback.base}/hook",
             "headers": {"Authorization": {"secret": "Bearer never-shown"}}, "body": {"id": "{{ $.id }}"}},
            {"id": "label", "type": "set_variable", "name": "label", "value": "long:{{ $.description }}"},
            {"id": "halt", "type": "stop", "when": {"path": "$vars.label", "op": "regex", "value": "^long:"}},
            {"id": "never", "type": "http_request", "url": f"{loopback.base}/never"},
        ],
    })
    before = await _counts(uw)
    events_before = simulator.sim.stats.copy()
    requests_before = _clockify_requests(uw)

    response = await uw.client.post(f"/api/flows/{flow['id']}/dry-run", json={"inbox_event_id": event_id},
                                    headers=admin(uw))
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["trigger_matched"]
    assert result["matched"]
    assert result["would_run"]
    assert result["blocked_by"] is None
    duration, project = result["conditions"]["all"]
    assert duration == {"path": "$.timeInterval.duration", "op": "gt", "value": "PT10H", "actual": "PT10H30M",
                        "result": True}
    assert project["actual"] is None
    assert project["result"] is True
    tag_step, notify, label, halt = result["actions"]
    assert tag_step["outcome"] == "would_run"
    assert tag_step["request"]["method"] == "PUT"
    assert tag_step["request"]["url"] == f"{simulator.sim.urls.backend}/v1/workspaces/{ws.id}/time-entries/{entry['id']}"
    assert tag_step["request"]["body"]["tagIds"] == [tag]
    assert notify["request"]["headers"]["Authorization"] == "********"
    assert label["variable"] == {"label": "long:Deploy release 42"}
    assert halt["outcome"] == "stop"
    assert halt["when"]["result"] is True
    assert result["variables"] == {"label": "long:Deploy release 42"}
    assert "never-shown" not in response.text

    assert await _counts(uw) == before
    assert loopback.requests == []
    row = ws.entries.row_of(entry["id"])
    assert row is not None
    assert render.time_entry(ws, row)["tagIds"] == []
    assert simulator.sim.stats == events_before  # Clockify emitted nothing: no write
    assert _clockify_requests(uw) == requests_before  # and the client sent no request at all
    assert (await uw.client.post(f"/api/flows/{flow['id']}/dry-run", json={"inbox_event_id": event_id},
                                 headers=member(uw))).status_code == 403


async def test_dry_run_an_unsaved_definition_on_a_sample(uw: AddonHarness) -> None:
    definition = {"name": "draft", "enabled": False, "trigger": {"events": ["NEW_TAG"]},
                  "conditions": {"any": [{"path": "$.name", "op": "contains", "value": "vip"},
                                         {"path": "$.archived", "op": "eq", "value": True}]},
                  "actions": [{"type": "set_variable", "name": "n", "value": "{{ $.name }}"}]}
    sample = {"type": "NEW_TAG", "body": {"id": "t1", "name": "regular", "archived": False}}
    result = (await uw.client.post("/api/flows/dry-run", json={"flow": definition, "event": sample},
                                   headers=admin(uw))).json()
    assert result["trigger_matched"] is True
    assert result["matched"] is False
    assert result["would_run"] is False
    assert result["blocked_by"] == "the conditions are false"
    assert [c["actual"] for c in result["conditions"]["any"]] == ["regular", False]

    vip = {**sample, "body": {**sample["body"], "name": "vip-client"}}
    result = (await uw.client.post("/api/flows/dry-run", json={"flow": definition, "event": vip},
                                   headers=admin(uw))).json()
    assert result["matched"] is True
    assert result["would_run"] is False
    assert result["blocked_by"] == "the flow is disabled"
    assert result["variables"] == {"n": "vip-client"}

    other = (await uw.client.post("/api/flows/dry-run", json={"flow": definition, "event": {**sample, "type": "NEW_TASK"}},
                                  headers=admin(uw))).json()
    assert other["trigger_matched"] is False
    bad = await uw.client.post("/api/flows/dry-run", json={"flow": {**definition, "conditions": {"path": "x", "op": "eq"}},
                                                           "event": sample}, headers=admin(uw))
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["location"] == "body.conditions.path"
    both = await uw.client.post("/api/flows/dry-run", json={"flow": definition, "event": sample, "inbox_event_id": 1},
                                headers=admin(uw))
    assert both.status_code == 422
    assert await _counts(uw) == (0, 0)
