"""Matching through the simulator: one flow per operator and nesting form, each recorded."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from clockify_core.db.base import utcnow
from clockify_core.flows.engine import flow_engine
from clockify_core.flows.models import Flow, FlowRun
from clockify_core.retention.service import run_retention
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import AddonHarness
from tests.flows.conftest import admin, create_flow, member, new_entry, owner_api, runs_of, settle

D = "duration"


def _cases(project: str, tag: str, workspace_id: str) -> list[tuple[str, dict[str, Any], bool]]:
    """(name, condition, should match) for the entry made in the test: 10h30m, billable,
    description "Deploy release 42", one project, tags [urgent, meeting], no task."""
    leaf = lambda path, op, value=None, **kw: {"path": path, "op": op, **({} if value is None else {"value": value}), **kw}  # noqa: E731
    return [
        ("eq", leaf("$.description", "eq", "Deploy release 42"), True),
        ("eq-miss", leaf("$.description", "eq", "deploy release 42"), False),
        ("eq-ignore-case", leaf("$.description", "eq", "deploy RELEASE 42", ignore_case=True), True),
        ("eq-bool", leaf("$.billable", "eq", True), True),
        ("eq-bool-is-not-1", leaf("$.billable", "eq", 1), False),
        ("ne", leaf("$.projectId", "ne", "nope"), True),
        ("ne-miss", leaf("$.projectId", "ne", project), False),
        ("gt-duration", leaf("$.timeInterval.duration", "gt", "PT10H", **{"as": D}), True),
        ("gt-duration-miss", leaf("$.timeInterval.duration", "gt", "PT11H", **{"as": D}), False),
        ("gte-duration", leaf("$.timeInterval.duration", "gte", "PT10H30M", **{"as": D}), True),
        ("lt-duration", leaf("$.timeInterval.duration", "lt", "PT10H30M", **{"as": D}), False),
        ("lte-duration-seconds", leaf("$.timeInterval.duration", "lte", 37800, **{"as": D}), True),
        ("gt-datetime", leaf("$.timeInterval.start", "gt", "2025-06-01T07:59:59Z", **{"as": "datetime"}), True),
        ("lt-number", leaf("$settings.sync_interval_minutes", "lt", 20), True),
        ("lt-number-miss", leaf("$settings.sync_interval_minutes", "lt", 15), False),
        ("gt-missing", leaf("$.nothing.here", "gt", 1), False),
        ("gte-string", leaf("$.description", "gte", "Deploy"), True),
        ("contains-text", leaf("$.description", "contains", "release"), True),
        ("contains-list", leaf("$.tagIds", "contains", tag), True),
        ("contains-many", leaf("$.tags[*].name", "contains", "meeting"), True),
        ("contains-many-miss", leaf("$.tags[*].name", "contains", "meet"), False),
        ("in", leaf("$.projectId", "in", ["x", project]), True),
        ("in-miss", leaf("$.projectId", "in", ["x", "y"]), False),
        ("exists", leaf("$.projectId", "exists"), True),
        ("exists-null", leaf("$.taskId", "exists"), False),
        ("not-exists", leaf("$.taskId", "exists", False), True),
        ("regex", leaf("$.description", "regex", r"release \d+$"), True),
        ("regex-miss", leaf("$.description", "regex", r"^release"), False),
        ("event-root", leaf("$event.type", "eq", "NEW_TIME_ENTRY"), True),
        ("workspace-root", leaf("$workspace.id", "eq", workspace_id), True),
        ("settings-root", leaf("$settings.flows_enabled", "eq", True), True),
        ("filter", leaf("$.tags[?(@.name == 'urgent')].id", "eq", tag), True),
        ("all", {"all": [leaf("$.billable", "eq", True), leaf("$.taskId", "exists", False)]}, True),
        ("all-miss", {"all": [leaf("$.billable", "eq", True), leaf("$.taskId", "exists")]}, False),
        ("any", {"any": [leaf("$.billable", "eq", False), leaf("$.description", "contains", "42")]}, True),
        ("any-miss", {"any": [leaf("$.billable", "eq", False), leaf("$.description", "contains", "43")]}, False),
        ("not", {"not": leaf("$.billable", "eq", False)}, True),
        ("nested", {"all": [{"not": {"any": [leaf("$.taskId", "exists"), leaf("$.billable", "eq", False)]}},
                            {"any": [leaf("$.timeInterval.duration", "gt", "PT10H", **{"as": D})]}]}, True),
        ("empty-all", {"all": []}, True),
        ("empty-any", {"any": []}, False),
    ]


async def test_one_flow_per_operator_and_nesting_form(uw: AddonHarness, simulator: InProcessSimulator) -> None:
    ws = simulator.workspace
    project = next(p for p in ws.projects.values() if not p["archived"])["id"]
    urgent = next(t["id"] for t in ws.tags.values() if t["name"] == "urgent")
    meeting = next(t["id"] for t in ws.tags.values() if t["name"] == "meeting")
    expected: dict[str, bool] = {}
    for name, condition, should in _cases(project, urgent, uw.workspace_id):
        flow = await create_flow(uw, {"name": name, "trigger": {"events": ["NEW_TIME_ENTRY"]},
                                      "conditions": condition, "record_unmatched": True})
        expected[flow["id"]] = should
    await new_entry(simulator, projectId=project, tagIds=[urgent, meeting])
    await settle(uw)
    seen: dict[str, bool] = {}
    names = {}
    for flow_id in expected:
        runs = await runs_of(uw, flow_id)
        assert len(runs) == 1, [r.status for r in runs]
        seen[flow_id] = runs[0].matched
        names[flow_id] = (await uw.client.get(f"/api/flows/{flow_id}", headers=admin(uw))).json()["name"]
        assert runs[0].status == ("SUCCEEDED" if runs[0].matched else "NOT_MATCHED")
        assert runs[0].event_type == "NEW_TIME_ENTRY"
        assert runs[0].inbox_event_id is not None
    wrong = {names[f]: seen[f] for f in expected if seen[f] != expected[f]}
    assert wrong == {}


async def test_trigger_filters_event_types_and_unmatched_costs_no_rows(
    uw: AddonHarness, simulator: InProcessSimulator
) -> None:
    on_tags = await create_flow(uw, {"name": "tags", "trigger": {"events": ["NEW_TAG"]}})
    quiet = await create_flow(uw, {"name": "quiet", "trigger": {"events": ["NEW_TIME_ENTRY"]},
                                   "conditions": {"path": "$.description", "op": "eq", "value": "never"}})
    await new_entry(simulator)
    await owner_api(simulator, "POST", "/tags", json={"name": "flows-test"})
    await settle(uw)
    tag_runs = await runs_of(uw, on_tags["id"])
    assert [(r.event_type, r.status) for r in tag_runs] == [("NEW_TAG", "SUCCEEDED")]
    # A non-match without record_unmatched writes no run, only counters.
    assert await runs_of(uw, quiet["id"]) == []
    await flow_engine(uw.runtime).flush_counters(uw.runtime.sessions)
    async with uw.runtime.sessions() as session:
        flow = await session.get(Flow, quiet["id"])
        assert flow is not None
        assert flow.evaluated_count == 1
        assert flow.matched_count == 0
    read = (await uw.client.get(f"/api/flows/{on_tags['id']}", headers=admin(uw))).json()
    assert read["evaluated_count"] == 1
    assert read["matched_count"] == 1
    assert read["last_matched_at"]


async def test_conditions_are_compiled_once_and_again_after_an_edit(
    uw: AddonHarness, simulator: InProcessSimulator
) -> None:
    engine = flow_engine(uw.runtime)
    definition = {"name": "billable", "trigger": {"events": ["NEW_TIME_ENTRY"]},
                  "conditions": {"path": "$.description", "op": "contains", "value": "match"}}
    flow = await create_flow(uw, definition)
    compiled, hits = engine.compilations, engine.cache_hits
    for i in range(6):
        await new_entry(simulator, description=f"match {i}" if i % 2 else f"other {i}")
    await settle(uw)
    assert len(await runs_of(uw, flow["id"])) == 3
    # Six events matched against the flow and three runs executed: compiled for the first event,
    # served from the cache for the other five and for each run.
    assert engine.compilations == compiled + 1
    assert engine.cache_hits == hits + 5 + 3

    edited = await uw.client.put(f"/api/flows/{flow['id']}", headers=admin(uw), json={
        **definition, "conditions": {"path": "$.description", "op": "contains", "value": "other"}})
    assert edited.status_code == 200, edited.text
    for i in range(4):
        await new_entry(simulator, description=f"other again {i}")
    await settle(uw)
    # The new version is compiled once, and it is what decides: the four new entries match it.
    assert engine.compilations == compiled + 2
    assert len(await runs_of(uw, flow["id"])) == 3 + 4


async def test_workspace_switch_turns_every_flow_off(uw: AddonHarness, simulator: InProcessSimulator) -> None:
    flow = await create_flow(uw, {"name": "any entry", "trigger": {"events": ["NEW_TIME_ENTRY"]}})
    addon_id = uw.installation.addon_id
    await simulator.sim.marketplace.update_settings(addon_id, [{"id": "flows_enabled", "value": False}])
    await new_entry(simulator)
    await settle(uw)
    assert await runs_of(uw, flow["id"]) == []
    await simulator.sim.marketplace.update_settings(addon_id, [{"id": "flows_enabled", "value": True}])
    await new_entry(simulator, description="second")
    await settle(uw)
    assert [r.status for r in await runs_of(uw, flow["id"])] == ["SUCCEEDED"]


async def test_max_runs_per_minute_records_the_excess(uw: AddonHarness, simulator: InProcessSimulator) -> None:
    flow = await create_flow(uw, {"name": "limited", "trigger": {"events": ["NEW_TIME_ENTRY"]},
                                  "max_runs_per_minute": 2})
    for i in range(4):
        await new_entry(simulator, description=f"entry {i}")
    await settle(uw)
    statuses = [r.status for r in await runs_of(uw, flow["id"])]
    assert statuses == ["SUCCEEDED", "SUCCEEDED", "RATE_LIMITED", "RATE_LIMITED"]
    async with uw.runtime.sessions() as session:
        limited = await session.scalar(
            select(func.count()).select_from(FlowRun).where(FlowRun.status == "RATE_LIMITED", FlowRun.matched.is_(True))
        )
    assert limited == 2


async def test_runs_api_pages_filters_and_shows_the_event_to_admins_only(
    uw: AddonHarness, simulator: InProcessSimulator
) -> None:
    flow = await create_flow(uw, {"name": "every entry", "trigger": {"events": ["NEW_TIME_ENTRY"]}})
    for i in range(3):
        await new_entry(simulator, description=f"entry {i}")
    await settle(uw)
    url = f"/api/flows/{flow['id']}/runs"
    first = (await uw.client.get(url, params={"limit": 2}, headers=admin(uw))).json()
    assert [r["status"] for r in first["runs"]] == ["SUCCEEDED", "SUCCEEDED"]
    assert first["runs"][0]["id"] > first["runs"][1]["id"]
    rest = (await uw.client.get(url, params={"limit": 2, "before_id": first["next_before_id"]},
                                headers=admin(uw))).json()
    assert len(rest["runs"]) == 1
    assert rest["next_before_id"] is None
    assert (await uw.client.get(url, params={"status": "failed"}, headers=admin(uw))).json()["runs"] == []
    run_id = first["runs"][0]["id"]
    # A run holds the event and the API answers it saw: a member reads neither the list nor a run.
    for refused in (await uw.client.get(url, headers=member(uw)), await uw.client.get(f"{url}/{run_id}", headers=member(uw))):
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert "entry" not in refused.text
    as_admin = (await uw.client.get(f"{url}/{run_id}", headers=admin(uw))).json()
    assert as_admin["event"]["body"]["description"] == "entry 2"
    assert as_admin["event"]["source"] == "clockify"
    assert (await uw.client.get(f"{url}/999999", headers=admin(uw))).status_code == 404


async def test_retention_removes_old_runs_including_those_never_executed(
    uw: AddonHarness, simulator: InProcessSimulator
) -> None:
    flow = await create_flow(uw, {"name": "kept a while", "trigger": {"events": ["NEW_TIME_ENTRY"]},
                                  "max_runs_per_minute": 1})
    await new_entry(simulator)
    await new_entry(simulator, description="over the limit")
    await settle(uw)
    assert [r.status for r in await runs_of(uw, flow["id"])] == ["SUCCEEDED", "RATE_LIMITED"]
    days = uw.settings.retention.flow_run_days
    removed = await run_retention(uw.runtime, now=utcnow() + timedelta(days=days - 1))
    assert removed["flow_runs"] == 0
    removed = await run_retention(uw.runtime, now=utcnow() + timedelta(days=days + 1))
    assert removed["flow_runs"] == 2
    assert await runs_of(uw, flow["id"]) == []
