"""Evaluation budgets: a flow's selectors can neither freeze a process nor run unbounded.

* When a flow is saved (or dry-run unsaved) its static cost is summed; over
  ``FLOWS__MAX_FLOW_COST`` it is refused with 422 naming the costly part.
* At run time every evaluation runs in the engine's thread pool with a step and time
  budget: past it the run fails (``CONDITION_ERROR`` for the conditions, ``FAILED`` for an
  action's `when`), counts towards auto-disable, and every other flow and workspace goes on.
* While a hostile evaluation runs, ``/healthz`` and another workspace's webhook are
  answered: proven by order (they finish while the evaluation is still in progress).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from jsonpath_ng.ext.parser import parse as jsonpath_parse
from sqlalchemy import select

import universal_webhook.app
import universal_webhook.settings
from clockify_core.flows.conditions import Limits, compile_condition
from clockify_core.flows.engine import flow_engine
from clockify_core.flows.models import Flow, FlowRun, RunStatus
from clockify_core.flows.paths import Budget, BudgetExceeded, Context, PathError, compile_path
from clockify_core.mirror.models import TimeEntry
from clockify_core.security.hmac import signed_headers
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import AddonHarness, installed_addon
from clockify_core.webhooks.models import InboxEvent
from clockify_core.webhooks.worker import process_batch
from tests.flows.conftest import FAST_FLOWS, admin, create_flow, runs_of, settle

NEVER = "no value in the body is this"


def _leaf(path: str) -> dict[str, Any]:
    return {"path": path, "op": "eq", "value": NEVER}


def _flow(conditions: Any = None, **extra: Any) -> dict[str, Any]:
    return {"name": "budgeted", "trigger": {"events": ["NEW_TIME_ENTRY"]}, "conditions": conditions,
            "actions": [{"type": "set_variable", "name": "seen", "value": "{{ $.id }}"}], **extra}


def _deep_body(items: int, depth: int) -> dict[str, Any]:
    """``items`` chains ``depth`` objects deep: `$..*..*` walks every chain once per level."""
    def chain(level: int) -> Any:
        return {"a": chain(level - 1)} if level else "leaf"
    return {"items": [chain(depth) for _ in range(items)]}


def _wide_body(items: int) -> dict[str, Any]:
    return {"kind": "big", "items": [{"n": i, "tags": ["x", "y"], "note": "filler"} for i in range(items)]}


@asynccontextmanager
async def _service(simulator: InProcessSimulator, db_url: str, **flows: Any) -> AsyncIterator[
    tuple[AddonHarness, dict[str, str], str]
]:
    """universal_webhook installed in workspace B (the harness's own) and in workspace A: the harness,
    an admin's headers in A and A's id."""
    async with installed_addon(
        simulator, universal_webhook.app.create_app, universal_webhook.settings.Settings, db_url=db_url,
        flows={**FAST_FLOWS, **flows},
    ) as addon:
        other = next(ws for ws in simulator.sim.workspaces if ws != addon.workspace_id)
        a = await simulator.install(addon.settings.base_url, workspace_id=other)
        await addon.process()
        ws_a = simulator.sim.workspace(other)
        token = a.signer.user_token(ws_a.id, a.addon_id, user_id=ws_a.owner_id,
                                    backend_url=simulator.sim.urls.backend, reports_url=simulator.sim.urls.reports,
                                    workspace_role="OWNER")
        yield addon, {"X-Addon-Token": token}, ws_a.id


async def _problem(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    return problem


async def _entry_in(simulator: InProcessSimulator, workspace_id: str) -> dict[str, Any]:
    """A human adds a time entry in ``workspace_id``: Clockify sends NEW_TIME_ENTRY."""
    ws = simulator.sim.workspace(workspace_id)
    client = simulator.owner_client(ws)
    response = await client.post(f"/api/v1/workspaces/{ws.id}/time-entries", json={
        "start": "2025-06-01T08:00:00Z", "end": "2025-06-01T09:00:00Z", "description": "workspace A's entry"})
    assert response.is_success, response.text
    entry: dict[str, Any] = response.json()
    return entry


async def _custom_source(addon: AddonHarness) -> dict[str, Any]:
    created = await addon.client.post("/api/custom-sources", json={"name": "bulk"}, headers=admin(addon))
    assert created.status_code == 201, created.text
    source: dict[str, Any] = created.json()
    return source


async def _send_custom(addon: AddonHarness, source: dict[str, Any], body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    headers = {**signed_headers(source["secret"], raw, int(time.time())), "X-Event-Type": "bulk.import",
               "Content-Type": "application/json"}
    response = await addon.client.post(f"/webhooks/custom/{source['id']}", content=raw, headers=headers)
    assert response.status_code == 200, response.text


# The budgeted walk and the cost model ---------------------------------------------------------

PATHS = [
    "$..*", "$..a", "$..a..b", "$.*.a", "$[*]", "$..[0]", "$[1:3]", "$..[::2]", "$..[-1]", "$..['a','b']",
    "$..[0,1]", "$..*[*]", "$..a.`this`", "$..[?(@.a == 1)]", "$.tags[?(@.name == 'x')].id", "$..[?(@.a)]",
    "$..[?(!@.a)]", "$..[?(@.a == 1 || @.b == 'x')]", "$..[?(@.a != null)]", "$..[?(@ > 1)]",
    "$..[?(@.a == $.b)]", "$..[?(@.a < 2)]", "$..[?(@.a == @.b)]",
]


def _document(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 4 or roll < 0.3:
        return rng.choice([1, 2, "x", "a", None, True, False, 1.5, "b"])
    if roll < 0.65:
        return {k: _document(rng, depth + 1) for k in rng.sample(["a", "b", "x", "name", "id", "tags"], rng.randint(0, 4))}
    return [_document(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def test_the_budgeted_walk_finds_what_jsonpath_ng_finds() -> None:
    """Same matches, same order, same types (True is not 1) as jsonpath-ng's own find."""
    rng = random.Random(15)
    selectors = [(compile_path(text), jsonpath_parse(text)) for text in PATHS]
    for _ in range(200):
        document = _document(rng)
        ctx = Context(document, {}, {}, {}, {})
        for selector, reference in selectors:
            try:
                expected = [match.value for match in reference.find(document)]
            except (TypeError, ValueError):
                expected = []
            found = selector.resolve(ctx)
            assert found == expected, (selector.text, document)
            assert [type(v) for v in found] == [type(v) for v in expected], (selector.text, document)


@pytest.mark.parametrize(("text", "reason"), [
    ("$.a[?(@.b == Area)]", "quote the string 'Area'"),
    ("$.a[?(@.b == 1 & @.c == 2)]", "`&` is not supported; use `&&`"),
    ("$.a | $.b", "`|` (union) is not supported"),
    ("$.a[?(@..b == 1)]", "`..` is not supported inside a filter"),
])
def test_syntax_jsonpath_ng_deprecates_is_refused_without_touching_warning_filters(text: str, reason: str) -> None:
    # Paths compile in the engine's threads: the check reads tokens, not process-wide warning filters.
    with pytest.raises(PathError, match=re.escape(reason)):
        compile_path(text)


def test_the_static_costs_are_the_documented_ones() -> None:
    assert [compile_path(p).cost for p in ("$.timeInterval.duration", "$..id", "$.tags[*].name", "$..a..b")] == [
        1, 52, 8, 515]
    node, problems = compile_condition({"all": [{"path": "$..*", "op": "regex", "value": "x"},
                                                {"path": "$.a", "op": "eq", "value": 1}]}, Limits())
    assert problems == []
    assert node.cost == 56 + 10 + 1


def test_a_budget_stops_a_walk_by_steps_by_time_and_in_contains() -> None:
    body = _wide_body(500)
    scan = compile_path("$..*")
    with pytest.raises(BudgetExceeded, match=r"more than 1000 steps \(FLOWS__EVALUATION_BUDGET\)"):
        scan.resolve(Context(body, {}, {}, {}, {}, Budget(1000)))
    assert len(scan.resolve(Context(body, {}, {}, {}, {}, Budget(10_000)))) == 2 + 4 * 500 + 2 * 500
    with pytest.raises(BudgetExceeded, match=r"longer than -1.0s \(FLOWS__EVALUATION_TIMEOUT\)"):
        scan.resolve(Context(body, {}, {}, {}, {}, Budget(10**9, timeout=-1.0)))
    # A singular path selects the list in one step; `contains` walks it and is charged for it.
    node, _ = compile_condition({"path": "$.items", "op": "contains", "value": NEVER}, Limits())
    assert not node.evaluate(Context(body, {}, {}, {}, {}, Budget(1000)))
    with pytest.raises(BudgetExceeded):
        node.evaluate(Context({"items": list(range(2000))}, {}, {}, {}, {}, Budget(1000)))


@pytest.mark.parametrize("text", [
    "$.a[?(@" + ".*" * 100 + " == 1)]",  # a long path per candidate, each level walked
    "$.a[?($.b[*] == -1)]",  # `$` in a filter: the root is walked again for every candidate
])
def test_the_paths_inside_a_filter_are_charged_too(text: str) -> None:
    # Without charging the filter's own paths, these cost about 2 steps per candidate, and a
    # 600 KB body held an evaluation thread for 20 s (ten times FLOWS__EVALUATION_TIMEOUT,
    # which is only checked when something is charged).
    body = {"a": [[] for _ in range(2000)], "b": list(range(2000))}
    selector = compile_path(text)
    with pytest.raises(BudgetExceeded, match="FLOWS__EVALUATION_BUDGET"):
        selector.resolve(Context(body, {}, {}, {}, {}, Budget(100_000)))
    # The same filter on a small body is decided as jsonpath-ng decides it.
    small = {"a": [[1], [], [2]], "b": [1]}
    assert selector.resolve(Context(small, {}, {}, {}, {}, Budget(100_000))) == [
        match.value for match in jsonpath_parse(text).find(small)]


# Save time -------------------------------------------------------------------------------------

async def test_a_flow_over_the_static_budget_is_refused_with_the_reason(
    simulator: InProcessSimulator, db_url: str
) -> None:
    async with _service(simulator, db_url) as (addon, _, _a):
        # 50 full scans of the body: 50 x 56 = 2800, over the default 2500.
        hostile = _flow({"any": [_leaf("$..*") for _ in range(50)]})
        problem = await _problem(await addon.client.post("/api/flows", json=hostile, headers=admin(addon)))
        assert "FLOWS__MAX_FLOW_COST" in problem["detail"]
        assert "2800" in problem["detail"]
        [error] = problem["errors"]
        assert error["location"] == "body.conditions"
        assert error["kind"] == "too_costly"
        assert "at most 2500" in error["message"]

        # The same selectors are refused in an unsaved dry-run, before anything is evaluated.
        dry = await addon.client.post("/api/flows/dry-run", headers=admin(addon), json={
            "flow": hostile, "event": {"type": "NEW_TIME_ENTRY", "body": {"id": "x"}}})
        assert (await _problem(dry))["errors"][0]["kind"] == "too_costly"

        # Under the budget it saves; the costly part of an update is named, here an action's `when`.
        fine = await create_flow(addon, _flow({"any": [_leaf("$..*") for _ in range(40)]}))
        update = _flow({"path": "$.id", "op": "exists"})
        update["actions"][0]["when"] = {"all": [_leaf("$..name..id") for _ in range(5)]}  # 5 x 515
        problem = await _problem(await addon.client.put(f"/api/flows/{fine['id']}", json=update,
                                                        headers=admin(addon)))
        assert problem["errors"][0]["location"] == "body.actions.0.when"
        assert problem["errors"][0]["kind"] == "too_costly"

        # `..` inside a filter would scan a subtree per candidate: refused as a bad path.
        problem = await _problem(await addon.client.post(
            "/api/flows", json=_flow(_leaf("$.items[?(@..x == 1)]")), headers=admin(addon)))
        assert problem["errors"][0] == {
            "location": "body.conditions.path", "kind": "bad_path",
            "message": "`..` is not supported inside a filter (it would scan a subtree per candidate)",
        }


# Run time --------------------------------------------------------------------------------------

async def test_a_run_over_its_budget_fails_and_disables_the_flow_while_others_go_on(
    simulator: InProcessSimulator, db_url: str
) -> None:
    async with _service(simulator, db_url, evaluation_budget=1000, failure_threshold=2) as (
        addon, headers_a, workspace_a
    ):
        source = await _custom_source(addon)
        trigger = {"custom_source": source["id"]}
        action = {"type": "set_variable", "name": "kind", "value": "{{ $.kind }}"}
        # Cheap enough to save (56), far over 1000 steps on a body of 500 items.
        scanning = await create_flow(addon, {"name": "scans", "trigger": trigger, "conditions": _leaf("$..*"),
                                             "actions": [action]})
        scanning_when = await create_flow(addon, {"name": "scans in when", "trigger": trigger, "actions": [
            {**action, "when": {"not": _leaf("$..*")}}]})
        ordinary = await create_flow(addon, {"name": "ordinary", "trigger": trigger,
                                             "conditions": {"path": "$.kind", "op": "eq", "value": "big"},
                                             "actions": [action]})
        created_a = await addon.client.post("/api/flows", headers=headers_a, json={
            "name": "A's flow", "trigger": {"events": ["NEW_TIME_ENTRY"]},
            "actions": [{"type": "set_variable", "name": "id", "value": "{{ $.id }}"}]})
        assert created_a.status_code == 201, created_a.text
        flow_a = created_a.json()

        await _send_custom(addon, source, _wide_body(500))
        entry_a = await _entry_in(simulator, workspace_a)
        await _send_custom(addon, source, _wide_body(500))
        await settle(addon)

        condition_runs = await runs_of(addon, scanning["id"])
        assert [r.status for r in condition_runs] == [RunStatus.CONDITION_ERROR] * 2
        for run in condition_runs:
            assert run.error == "evaluation budget exceeded: more than 1000 steps (FLOWS__EVALUATION_BUDGET)"
        when_runs = await runs_of(addon, scanning_when["id"])
        assert [r.status for r in when_runs] == [RunStatus.FAILED] * 2
        assert when_runs[0].error == "step1: evaluation budget exceeded: more than 1000 steps (FLOWS__EVALUATION_BUDGET)"
        async with addon.runtime.sessions() as session:
            for flow_id in (scanning["id"], scanning_when["id"]):
                flow = await session.get(Flow, flow_id)
                assert flow is not None
                assert not flow.enabled
                assert flow.disabled_reason is not None
                assert "Disabled after 2 failed runs in a row" in flow.disabled_reason
                assert "evaluation budget exceeded" in flow.disabled_reason
            # Every event was processed: the mirror has A's entry, no event is left behind.
            assert await session.get(TimeEntry, (workspace_a, entry_a["id"])) is not None
            statuses = set((await session.execute(select(InboxEvent.status))).scalars())
            assert statuses == {"DONE"}
        # The other flows of B and the flow of A ran as usual.
        assert [r.status for r in await runs_of(addon, ordinary["id"])] == [RunStatus.SUCCEEDED] * 2
        [run_a] = await runs_of(addon, flow_a["id"])
        assert run_a.status == RunStatus.SUCCEEDED
        assert run_a.actions[0]["variable"] == {"id": entry_a["id"]}


# The event loop stays free -------------------------------------------------------------------

async def _answered_while_running(
    addon: AddonHarness, simulator: InProcessSimulator, workspace_a: str, task: asyncio.Task[Any], name: str
) -> None:
    """Wait until the engine's pool runs ``name``; then /healthz and a webhook of workspace A must
    be answered while it still runs."""
    engine = flow_engine(addon.runtime)
    while not engine.running[name]:
        assert not task.done(), task.result()
        await asyncio.sleep(0.005)
    health = await addon.client.get("/healthz")
    assert health.status_code == 200, health.text
    entry = await _entry_in(simulator, workspace_a)
    await simulator.drain()  # Clockify delivers the webhook: the add-on answered it
    async with addon.runtime.sessions() as session:
        bodies = (await session.execute(select(InboxEvent.body).where(InboxEvent.workspace_id == workspace_a))).scalars()
        assert any(entry["id"] in body for body in bodies)
    # Both were answered while the hostile evaluation was still in progress.
    assert engine.running[name] == 1
    assert not task.done()


@pytest.mark.postgres
async def test_a_hostile_dry_run_does_not_hold_the_event_loop(simulator: InProcessSimulator, pg_url: str) -> None:
    # A step budget out of reach: the time budget (5 s) is what ends this evaluation.
    async with _service(simulator, pg_url, evaluation_budget=10**12, evaluation_timeout=5.0) as (addon, _, workspace_a):
        # 4 x 555 = 2220: saveable. "any": no leaf matches, so each is walked, past the 5 s budget.
        hostile = _flow({"any": [_leaf("$..*..*") for _ in range(4)]})
        task = asyncio.create_task(addon.client.post("/api/flows/dry-run", headers=admin(addon), json={
            "flow": hostile, "event": {"type": "NEW_TIME_ENTRY", "body": _deep_body(2500, 40)}}))
        await _answered_while_running(addon, simulator, workspace_a, task, "_dry_evaluate")
        response = await task
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["matched"] is False
        assert result["blocked_by"] == (
            "condition error: evaluation budget exceeded: longer than 5.0s (FLOWS__EVALUATION_TIMEOUT)"
        )


@pytest.mark.postgres
async def test_a_hostile_inbox_evaluation_does_not_hold_the_event_loop(
    simulator: InProcessSimulator, pg_url: str
) -> None:
    async with _service(simulator, pg_url, evaluation_budget=10**12, evaluation_timeout=5.0) as (addon, _, workspace_a):
        source = await _custom_source(addon)
        # "any": no leaf matches, so every one is walked (4 x 555 = 2220, saveable), far past
        # the 5 s time budget however fast the machine is ("all" would stop at the first).
        hostile = await create_flow(addon, {"name": "hostile", "trigger": {"custom_source": source["id"]},
                                            "conditions": {"any": [_leaf("$..*..*") for _ in range(4)]}})
        await _send_custom(addon, source, _deep_body(2500, 40))
        task = asyncio.create_task(process_batch(addon.runtime))  # the inbox worker takes B's event
        await _answered_while_running(addon, simulator, workspace_a, task, "evaluate_conditions")
        assert await task == 1
        # On a loaded machine the first claim's lease can run out during the 5 s evaluation; the
        # event is then claimed again and evaluated again: the run is recorded once either way.
        await addon.process()
        [run] = await runs_of(addon, hostile["id"])
        assert run.status == RunStatus.CONDITION_ERROR
        assert run.error == "evaluation budget exceeded: longer than 5.0s (FLOWS__EVALUATION_TIMEOUT)"
        await addon.process()
        async with addon.runtime.sessions() as session:
            pending = await session.scalar(select(FlowRun.id).where(FlowRun.workspace_id == workspace_a).limit(1))
            assert pending is None  # A has no flow; its event simply went through
            statuses = set((await session.execute(
                select(InboxEvent.status).where(InboxEvent.workspace_id == workspace_a))).scalars())
            assert statuses == {"DONE"}


def test_a_dry_run_trace_stays_small_whatever_its_leaves_select() -> None:
    # 100 leaves of `$` (cost 100, saveable) on a ~650 KB sample: each leaf's `actual` was the whole
    # body, a 67 MB answer serialized on the event loop (about a second, and far more through
    # jsonable_encoder). Each traced value is now cut to about 2000 characters.
    body = {"items": [{"id": "x" * 20, "n": n, "tags": ["a", "b"]} for n in range(12_000)],
            "deep": {"a": {"b": {"c": ["y" * 500] * 50}}}}
    node, problems = compile_condition({"all": [_leaf("$") for _ in range(100)]}, Limits(max_nodes=101))
    assert problems == []
    trace = node.explain(Context(body, {}, {}, {}, {}))
    assert len(json.dumps(trace)) < 100 * 3000
    # A small value is shown whole; long strings and lists are cut as before.
    small, _ = compile_condition({"all": [{"path": "$.small", "op": "exists", "value": True},
                                          {"path": "$.list", "op": "exists", "value": True}]}, Limits())
    parts = small.explain(Context({"small": {"a": [1, 2], "s": "z" * 300}, "list": list(range(30))},
                                  {}, {}, {}, {}))["all"]
    assert parts[0]["actual"] == {"a": [1, 2], "s": "z" * 200 + "…"}
    assert parts[1]["actual"] == [*range(20), "…"]
