"""Executing flows through the simulator: Clockify writes, branching, retries, auto-disable,
crash recovery, the loop guard and custom sources."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

import universal_webhook.app
import universal_webhook.settings
from clockify_core.db.base import utcnow
from clockify_core.flows.executor import claim, housekeeping, run_due
from clockify_core.flows.models import Flow, FlowRun
from clockify_core.openapi.models import ApiCall
from clockify_core.security.crypto import TokenCipher
from clockify_core.security.hmac import signed_headers
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import AddonHarness, installed_addon
from tests.flows.conftest import (
    FAST_FLOWS,
    LoopbackServer,
    admin,
    create_flow,
    new_entry,
    owner_api,
    runs_of,
    settle,
)

LONG_WITHOUT_PROJECT = {"all": [
    {"path": "$.timeInterval.duration", "op": "gt", "value": "PT10H", "as": "duration"},
    {"path": "$.projectId", "op": "exists", "value": False},
]}


def _tag_action(tag_id: str) -> dict[str, Any]:
    """Clockify's PUT replaces the entry, so every field is carried over from the event."""
    return {
        "id": "tag", "type": "clockify_api", "operation_id": "updateTimeEntry", "path": {"id": "{{ $.id }}"},
        "body": {"start": "{{ $.timeInterval.start }}", "end": "{{ $.timeInterval.end }}",
                 "description": "{{ $.description }}", "projectId": "{{ $.projectId }}",
                 "billable": "{{ $.billable }}", "tagIds": ["{{ ...$.tagIds }}", tag_id]},
    }


def _sim_entry(sim: InProcessSimulator, entry_id: str) -> dict[str, Any]:
    from clockify_core.simulator import render

    ws = sim.workspace
    row = ws.entries.row_of(entry_id)
    assert row is not None
    return render.time_entry(ws, row)


async def test_long_entry_without_project_is_tagged_and_notified(
    uw: AddonHarness, simulator: InProcessSimulator, loopback: LoopbackServer
) -> None:
    ws = simulator.workspace
    tag = next(t["id"] for t in ws.tags.values() if t["name"] == "urgent")
    other = next(t["id"] for t in ws.tags.values() if t["name"] == "remote")
    flow = await create_flow(uw, {
        "name": "Tag long entries without a project", "trigger": {"events": ["NEW_TIME_ENTRY"]},
        "conditions": LONG_WITHOUT_PROJECT,
        "actions": [
            _tag_action(tag),
            {"id": "notify", "type": "http_request", "method": "POST", "url": f"{loopback.base}/hook/{{{{ $.id }}}}",
             "headers": {"Authorization": {"secret": "Bearer top-secret"}, "X-Entry": "{{ $.id }}"},
             "body": {"text": "Long entry by {{ $.user.name }}: {{ $.timeInterval.duration }}", "id": "{{ $.id }}",
                      "tags": "{{ $.tagIds }}"}},
        ],
    })
    long_entry = await new_entry(simulator, tagIds=[other])
    short_entry = await new_entry(simulator, end="2025-06-01T09:00:00Z", description="short")
    await uw.process()  # matched and queued; bootstrap and the mirror's refetches are done
    metrics = uw.runtime.metrics.registry
    admitted_before = metrics.get_sample_value("rate_limit_wait_seconds_count") or 0
    assert await run_due(uw.runtime) == 1
    admitted_by_the_run = (metrics.get_sample_value("rate_limit_wait_seconds_count") or 0) - admitted_before
    await settle(uw)

    assert _sim_entry(simulator, long_entry["id"])["tagIds"] == sorted([tag, other])
    assert _sim_entry(simulator, short_entry["id"])["tagIds"] == []
    runs = await runs_of(uw, flow["id"])
    assert [(r.entity_id, r.status) for r in runs] == [(long_entry["id"], "SUCCEEDED")]
    tag_step, notify_step = runs[0].actions
    assert tag_step["request"]["method"] == "PUT"
    assert tag_step["response"]["status"] == 200
    assert tag_step["request"]["path"].endswith(f"/time-entries/{long_entry['id']}")
    assert notify_step["request"]["headers"]["Authorization"] == "********"
    assert "top-secret" not in json.dumps(runs[0].actions)

    [received] = [r for r in loopback.requests if r.path.startswith("/hook/")]
    assert received.path == f"/hook/{long_entry['id']}"
    assert received.method == "POST"
    assert received.headers["authorization"] == "Bearer top-secret"
    assert received.headers["x-entry"] == long_entry["id"]
    body = json.loads(received.body)
    owner = ws.users[ws.owner_id]["name"]
    assert body == {"text": f"Long entry by {owner}: PT10H30M", "id": long_entry["id"], "tags": [other]}

    async with uw.runtime.sessions() as session:
        calls = (await session.execute(select(ApiCall))).scalars().all()
    assert [(c.source, c.operation_id, c.method, c.status) for c in calls] == [("flow", "updateTimeEntry", "PUT", 200)]
    assert metrics.get_sample_value("flows_executed_total", {"status": "succeeded"}) == 1
    assert metrics.get_sample_value("flow_action_duration_seconds_count", {"action": "clockify_api"}) == 1
    assert metrics.get_sample_value("flow_action_duration_seconds_count", {"action": "http_request"}) == 1
    # The flow's Clockify call went through the client's rate limiter, which times every request it
    # admits: during the run it admitted exactly the flow's calls (the HTTP action is not Clockify's).
    assert admitted_by_the_run == len(calls) == 1


async def test_when_set_variable_and_stop_branch(
    uw: AddonHarness, simulator: InProcessSimulator, loopback: LoopbackServer
) -> None:
    long = {"path": "$.timeInterval.duration", "op": "gt", "value": "PT8H", "as": "duration"}
    flow = await create_flow(uw, {"name": "branch", "trigger": {"events": ["NEW_TIME_ENTRY"]}, "actions": [
        {"id": "classify", "type": "set_variable", "name": "size", "value": "big", "when": long},
        {"id": "halt", "type": "stop", "reason": "big entries are handled elsewhere",
         "when": {"path": "$vars.size", "op": "eq", "value": "big"}},
        {"id": "ping", "type": "http_request", "url": f"{loopback.base}/small?d={{{{ $.description }}}}"},
    ]})
    await new_entry(simulator)
    await new_entry(simulator, end="2025-06-01T09:00:00Z", description="a & b")
    await settle(uw)
    big, small = await runs_of(uw, flow["id"])
    assert big.status == "STOPPED"
    assert [(a["id"], a["status"]) for a in big.actions] == [("classify", "succeeded"), ("halt", "stopped")]
    assert small.status == "SUCCEEDED"
    assert [(a["id"], a["status"]) for a in small.actions] == [("classify", "skipped"), ("halt", "skipped"),
                                                              ("ping", "succeeded")]
    [ping] = loopback.requests
    assert ping.query == {"d": ["a & b"]}  # percent-encoded into one query value


@pytest.fixture
async def fragile(simulator: InProcessSimulator, pg_url: str, loopback: LoopbackServer) -> AsyncIterator[AddonHarness]:
    async with installed_addon(
        simulator, universal_webhook.app.create_app, universal_webhook.settings.Settings, db_url=pg_url,
        flows={**FAST_FLOWS, "http_allowlist": [f"127.0.0.1:{loopback.port}"], "max_action_attempts": 2,
               "failure_threshold": 2},
    ) as addon:
        await addon.process()
        yield addon


async def test_failures_retry_then_fail_and_disable_the_flow(
    fragile: AddonHarness, simulator: InProcessSimulator, loopback: LoopbackServer
) -> None:
    flow = await create_flow(fragile, {"name": "down", "trigger": {"events": ["NEW_TIME_ENTRY"]}, "actions": [
        {"id": "call", "type": "http_request", "url": f"{loopback.base}/fail"},
    ]})
    for i in range(3):
        await new_entry(simulator, description=f"entry {i}")
        await settle(fragile)
    runs = await runs_of(fragile, flow["id"])
    assert [(r.status, r.attempts) for r in runs] == [("FAILED", 2), ("FAILED", 2)]  # the third found it disabled
    assert runs[0].actions[-1]["error"] == "the server answered 503"
    assert runs[0].actions[-1]["attempts"] == 2
    assert len(loopback.requests) == 4
    read = (await fragile.client.get(f"/api/flows/{flow['id']}", headers=admin(fragile))).json()
    assert read["enabled"] is False
    assert read["consecutive_failures"] == 2
    assert "2 failed runs in a row" in read["disabled_reason"]
    assert "503" in read["disabled_reason"]
    metrics = fragile.runtime.metrics.registry
    assert metrics.get_sample_value("flows_executed_total", {"status": "failed"}) == 2

    # Editing the definition without saying `enabled` keeps it disabled, with its reason.
    edit = {k: read[k] for k in ("name", "trigger", "conditions", "actions", "max_runs_per_minute")}
    edited = await fragile.client.put(f"/api/flows/{flow['id']}", json={**edit, "name": "down, renamed"},
                                      headers=admin(fragile))
    assert edited.status_code == 200, edited.text
    assert (edited.json()["enabled"], edited.json()["disabled_reason"]) == (False, read["disabled_reason"])
    assert edited.json()["consecutive_failures"] == 2

    # A client error is not retried: the entry does not exist.
    enabled = (await fragile.client.post(f"/api/flows/{flow['id']}/enable", headers=admin(fragile))).json()
    assert enabled["consecutive_failures"] == 0
    assert enabled["disabled_reason"] is None
    missing = await create_flow(fragile, {"name": "404", "trigger": {"events": ["NEW_TAG"]}, "actions": [
        {"type": "clockify_api", "operation_id": "getTimeEntry", "path": {"id": "5f0000000000000000000000"}},
    ]})
    await owner_api(simulator, "POST", "/tags", json={"name": "triggers 404"})
    await settle(fragile)
    [run] = await runs_of(fragile, missing["id"])
    assert run.status == "FAILED"
    assert run.attempts == 1
    assert run.actions[0]["response"]["status"] in (400, 404)


async def test_a_run_claimed_by_a_dead_worker_is_taken_over(
    uw: AddonHarness, simulator: InProcessSimulator, loopback: LoopbackServer
) -> None:
    flow = await create_flow(uw, {"name": "survives", "trigger": {"events": ["NEW_TIME_ENTRY"]}, "actions": [
        {"type": "http_request", "url": f"{loopback.base}/hook"},
    ]})
    await new_entry(simulator)
    for _ in range(50):  # match, but do not execute
        await uw.process()
        if await runs_of(uw, flow["id"]):
            break
    async with uw.runtime.sessions.begin() as session:
        [claimed] = await claim(session, worker_id="crashed-worker", limit=10, lease_seconds=300, max_attempts=3,
                                failure_threshold=5)
    assert claimed.flow_id == flow["id"]
    assert await run_due(uw.runtime) == 0  # leased to the dead worker
    async with uw.runtime.sessions.begin() as session:  # ... until its lease runs out
        (await session.get(FlowRun, claimed.id)).locked_until = utcnow() - timedelta(seconds=1)
    await settle(uw)
    [run] = await runs_of(uw, flow["id"])
    assert run.status == "SUCCEEDED"
    assert run.attempts == 2
    assert len(loopback.requests) == 1


async def test_loop_guard_caps_a_flow_that_rewrites_its_own_trigger(
    uw: AddonHarness, simulator: InProcessSimulator
) -> None:
    await _loop_guard_scenario(uw, simulator)


async def test_loop_guard_on_sqlite(simulator: InProcessSimulator, sqlite_url: str) -> None:
    # SQLite claims, upserts loop marks and records runs through its own dialect paths.
    async with installed_addon(
        simulator, universal_webhook.app.create_app, universal_webhook.settings.Settings, db_url=sqlite_url,
        flows=FAST_FLOWS,
    ) as addon:
        await addon.process()
        await _loop_guard_scenario(addon, simulator)
        async with addon.runtime.sessions() as session:
            calls = (await session.execute(select(ApiCall.operation_id, ApiCall.status))).all()
        assert len(calls) == 2 * (addon.settings.flows.loop_max_depth + 1)


async def _loop_guard_scenario(uw: AddonHarness, simulator: InProcessSimulator) -> None:
    entry = await new_entry(simulator, description="loop")
    await settle(uw)
    flow = await create_flow(uw, {"name": "rewrites itself", "trigger": {"events": ["TIME_ENTRY_UPDATED"]}, "actions": [
        {"type": "clockify_api", "operation_id": "updateTimeEntry", "path": {"id": "{{ $.id }}"},
         "body": {"start": "{{ $.timeInterval.start }}", "end": "{{ $.timeInterval.end }}",
                  "description": "{{ $.description }}+", "tagIds": "{{ $.tagIds }}"}},
    ]})
    # A person edits the entry; each flow write comes back as TIME_ENTRY_UPDATED through webhook delivery.
    await owner_api(simulator, "PUT", f"/time-entries/{entry['id']}", json={
        "start": "2025-06-01T08:00:00Z", "end": "2025-06-01T18:30:00Z", "description": "edited"})
    await settle(uw)
    runs = await runs_of(uw, flow["id"])
    depth = uw.settings.flows.loop_max_depth
    assert [(r.chain_depth, r.status) for r in runs] == [
        *[(d, "SUCCEEDED") for d in range(depth + 1)], (depth + 1, "LOOP_BLOCKED")
    ]
    assert _sim_entry(simulator, entry["id"])["description"] == "edited" + "+" * (depth + 1)
    assert not simulator.sim.delivery.pending
    # Once the marks expire (here: removed as housekeeping does), a person's edit starts a fresh chain.
    assert await housekeeping(uw.runtime.sessions, now=utcnow() + timedelta(seconds=uw.settings.flows.loop_window_seconds + 1)) == 1
    await owner_api(simulator, "PUT", f"/time-entries/{entry['id']}", json={
        "start": "2025-06-01T08:00:00Z", "end": "2025-06-01T18:30:00Z", "description": "again"})
    await settle(uw)
    assert [r.chain_depth for r in await runs_of(uw, flow["id"])][-1] == depth + 1
    assert _sim_entry(simulator, entry["id"])["description"] == "again" + "+" * (depth + 1)


async def test_custom_source_events_trigger_flows(uw: AddonHarness) -> None:
    created = await uw.client.post("/api/custom-sources", json={"name": "billing"}, headers=admin(uw))
    assert created.status_code == 201, created.text
    source = created.json()
    flow = await create_flow(uw, {
        "name": "paid invoices", "trigger": {"custom_source": source["id"], "events": ["invoice.paid"]},
        "conditions": {"path": "$.amount", "op": "gte", "value": 100},
        "actions": [{"type": "set_variable", "name": "who", "value": "{{ $event.source_ref }}:{{ $.customer }}"}],
    })

    async def send(event_type: str, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        headers = {**signed_headers(source["secret"], raw, int(time.time())), "X-Event-Type": event_type,
                   "Content-Type": "application/json"}
        response = await uw.client.post(f"/webhooks/custom/{source['id']}", content=raw, headers=headers)
        assert response.status_code == 200, response.text

    await send("invoice.paid", {"amount": 250, "customer": "acme"})
    await send("invoice.paid", {"amount": 5, "customer": "tiny"})
    await send("invoice.sent", {"amount": 900, "customer": "acme"})
    await settle(uw)
    [run] = await runs_of(uw, flow["id"])
    assert run.status == "SUCCEEDED"
    assert run.actions[0]["variable"] == {"who": f"{source['id']}:acme"}
    assert run.event_type == "invoice.paid"
    assert run.entity_id is None


async def test_deleting_a_flow_removes_its_queued_runs(uw: AddonHarness, simulator: InProcessSimulator) -> None:
    flow = await create_flow(uw, {"name": "short-lived", "trigger": {"events": ["NEW_TIME_ENTRY"]}})
    await new_entry(simulator)
    for _ in range(50):
        await uw.process()
        if await runs_of(uw, flow["id"]):
            break
    assert [r.status for r in await runs_of(uw, flow["id"])] == ["QUEUED"]
    assert (await uw.client.delete(f"/api/flows/{flow['id']}", headers=admin(uw))).status_code == 204
    await settle(uw)
    async with uw.runtime.sessions() as session:
        assert (await session.execute(select(FlowRun))).scalars().all() == []


# Nothing leaves a run RUNNING --------------------------------------------------------------------

async def _queued(addon: AddonHarness, flow_ids: list[str]) -> None:
    """Deliver and match events until every flow has a queued run (none executed yet)."""
    for _ in range(50):
        await addon.process()
        statuses = [[r.status for r in await runs_of(addon, fid)] for fid in flow_ids]
        if all(found == ["QUEUED"] for found in statuses):
            return
    raise AssertionError("no queued runs")


async def _flow(addon: AddonHarness, flow_id: str) -> dict[str, Any]:
    read: dict[str, Any] = (await addon.client.get(f"/api/flows/{flow_id}", headers=admin(addon))).json()
    return read


async def test_a_header_the_client_cannot_send_fails_the_action_and_the_batch_goes_on(
    fragile: AddonHarness, simulator: InProcessSimulator, loopback: LoopbackServer
) -> None:
    ws = simulator.workspace
    ws.users[ws.owner_id]["name"] = "José Núñez"  # what the entry's user is called in Clockify
    bad = await create_flow(fragile, {"name": "name in a header", "trigger": {"events": ["NEW_TIME_ENTRY"]},
                                      "actions": [{"id": "notify", "type": "http_request", "url": f"{loopback.base}/hook",
                                                   "headers": {"X-User": "{{ $.user.name }}"}}]})
    good = await create_flow(fragile, {"name": "name in the body", "trigger": {"events": ["NEW_TIME_ENTRY"]},
                                       "actions": [{"id": "notify", "type": "http_request", "url": f"{loopback.base}/ok",
                                                    "body": {"user": "{{ $.user.name }}"}}]})
    await new_entry(simulator)
    await _queued(fragile, [bad["id"], good["id"]])
    assert await run_due(fragile.runtime) == 2  # one batch: the first run's failure does not hold up the second

    [failed] = await runs_of(fragile, bad["id"])
    assert (failed.status, failed.attempts) == ("FAILED", 1)  # not retryable: the same value would fail again
    assert failed.error == ("notify: the rendered value of header X-User contains a non-ASCII character "
                            "(header values are ASCII; put such text in the body)")
    assert failed.actions[-1]["status"] == "failed"
    [sent] = await runs_of(fragile, good["id"])
    assert sent.status == "SUCCEEDED"
    assert [(r.path, json.loads(r.body)) for r in loopback.requests] == [("/ok", {"user": "José Núñez"})]
    assert (await _flow(fragile, bad["id"]))["consecutive_failures"] == 1  # counts towards auto-disable
    assert fragile.runtime.metrics.registry.get_sample_value("flows_executed_total", {"status": "failed"}) == 1


async def test_header_values_that_cannot_be_sent_are_refused_when_saved(uw: AddonHarness, loopback: LoopbackServer) -> None:
    for headers, location in (
        ({"X-User": "José"}, "body.actions.0.headers.X-User"),
        ({"X-User": "Jos\u00e9 {{ $.id }}"}, "body.actions.0.headers.X-User"),
        ({"X-Key": {"secret": "clé-secrète"}}, "body.actions.0.headers.X-Key"),
        ({"X-Key": {"secret": "a\r\nInjected: 1"}}, "body.actions.0.headers.X-Key"),
    ):
        response = await uw.client.post("/api/flows", headers=admin(uw), json={
            "name": "bad header", "trigger": {"events": ["NEW_TIME_ENTRY"]},
            "actions": [{"type": "http_request", "url": f"{loopback.base}/hook", "headers": headers}]})
        assert response.status_code == 422, (headers, response.text)
        [error] = response.json()["errors"]
        assert error["location"] == location, error


async def test_a_secret_the_configured_key_cannot_open_fails_the_run(
    fragile: AddonHarness, simulator: InProcessSimulator, loopback: LoopbackServer
) -> None:
    flow = await create_flow(fragile, {"name": "sealed", "trigger": {"events": ["NEW_TIME_ENTRY"]}, "actions": [
        {"id": "call", "type": "http_request", "url": f"{loopback.base}/hook", "headers": {"X-Key": {"secret": "k-1"}}}]})
    # Sealed under a key this service no longer has (ENCRYPTION_KEY changed without rotate-secrets).
    async with fragile.runtime.sessions.begin() as session:
        row = await session.get(Flow, flow["id"])
        assert row is not None
        row.actions = [{**row.actions[0], "headers": {"X-Key": {"secret_encrypted": TokenCipher("a retired key").encrypt("k-1")}}}]
    await new_entry(simulator)
    await settle(fragile)
    [run] = await runs_of(fragile, flow["id"])
    assert (run.status, run.attempts) == ("FAILED", 1)
    assert run.error == "call: Stored secret cannot be decrypted with the configured ENCRYPTION_KEY"
    assert loopback.requests == []
    assert (await _flow(fragile, flow["id"]))["consecutive_failures"] == 1


async def test_a_run_that_keeps_stopping_its_worker_ends_failed(
    fragile: AddonHarness, simulator: InProcessSimulator, loopback: LoopbackServer
) -> None:
    flow = await create_flow(fragile, {"name": "crashes", "trigger": {"events": ["NEW_TIME_ENTRY"]}, "actions": [
        {"id": "call", "type": "http_request", "url": f"{loopback.base}/hook"}]})
    await new_entry(simulator)
    await _queued(fragile, [flow["id"]])
    config = fragile.settings.flows
    limits = {"limit": 10, "lease_seconds": 0.05, "max_attempts": config.max_action_attempts,
              "failure_threshold": config.failure_threshold}
    # Each worker takes the run and dies with it (killed, out of memory...): its lease runs out.
    for worker in range(config.max_action_attempts + 1):
        async with fragile.runtime.sessions.begin() as session:
            claimed = await claim(session, worker_id=f"doomed-{worker}", **limits)
        [run] = claimed
        await asyncio.sleep(0.1)
    assert run.gave_up is not None
    [stored] = await runs_of(fragile, flow["id"])
    assert (stored.status, stored.attempts) == ("FAILED", config.max_action_attempts + 1)
    assert stored.error == run.gave_up
    assert "the worker running it stopped before it finished" in stored.error
    assert stored.finished_at is not None
    assert await run_due(fragile.runtime) == 0  # never claimed again
    assert loopback.requests == []
    assert (await _flow(fragile, flow["id"]))["consecutive_failures"] == 1


# Secrets in what a run stores --------------------------------------------------------------------

async def test_a_secret_echoed_back_is_masked_in_the_run_state_results_and_api(
    fragile: AddonHarness, simulator: InProcessSimulator, loopback: LoopbackServer
) -> None:
    secret = "sk-live-1234567890"
    flow = await create_flow(fragile, {"name": "echo", "trigger": {"events": ["NEW_TIME_ENTRY"]}, "actions": [
        {"id": "call", "type": "http_request", "url": f"{loopback.base}/echo", "save_as": "echo",
         "headers": {"Authorization": {"secret": f"Bearer {secret}"}}},
        {"id": "copy", "type": "set_variable", "name": "copied", "value": "{{ $vars.echo.headers }}"},
        {"id": "down", "type": "http_request", "url": f"{loopback.base}/fail?seen={{{{ $vars.echo.headers.authorization }}}}"},
    ]})
    await new_entry(simulator)
    await _queued(fragile, [flow["id"]])
    assert await run_due(fragile.runtime) == 1
    # The third action failed and will be retried: the run is stored with its variables to resume from.
    [waiting] = await runs_of(fragile, flow["id"])
    assert waiting.status == "QUEUED"
    assert waiting.state is not None
    assert set(waiting.state["vars"]) == {"echo", "copied"}
    stored = json.dumps([waiting.state, waiting.actions, waiting.error])
    assert secret not in stored
    assert '"authorization": "********"' in stored
    await settle(fragile)

    [run] = await runs_of(fragile, flow["id"])
    assert run.status == "FAILED"
    # The secret did go out, and came back in the echo; nothing the run keeps or shows holds it.
    assert [r.headers["authorization"] for r in loopback.requests if r.path == "/echo"] == [f"Bearer {secret}"]
    first_failure = next(r for r in loopback.requests if r.path == "/fail")
    assert secret in first_failure.query["seen"][0]
    assert [a["id"] for a in run.actions] == ["call", "copy", "down"]
    assert run.actions[1]["variable"]["copied"]["authorization"] == "********"
    assert secret not in json.dumps([run.state, run.actions, run.error])
    shown = [
        (await fragile.client.get(f"/api/flows/{flow['id']}/runs", headers=admin(fragile))).text,
        (await fragile.client.get(f"/api/flows/{flow['id']}/runs/{run.id}", headers=admin(fragile))).text,
    ]
    assert all(secret not in text for text in shown)
    assert '"authorization":"********"' in shown[1]


async def test_on_sqlite_a_run_taken_between_select_and_update_is_not_claimed_twice(
    simulator: InProcessSimulator, sqlite_url: str, loopback: LoopbackServer
) -> None:
    """SQLite's SELECT takes no lock: a worker must not claim a run another worker claimed
    after that SELECT. Another process's claim is played by a second connection that
    commits right after this worker's candidate SELECT."""
    async with installed_addon(
        simulator, universal_webhook.app.create_app, universal_webhook.settings.Settings, db_url=sqlite_url,
        flows={**FAST_FLOWS, "http_allowlist": [f"127.0.0.1:{loopback.port}"]},
    ) as addon:
        await addon.process()
        flow = await create_flow(addon, {"name": "once", "trigger": {"events": ["NEW_TIME_ENTRY"]}, "actions": [
            {"type": "http_request", "url": f"{loopback.base}/hook"},
        ]})
        await new_entry(simulator)
        for _ in range(50):  # match, but do not execute
            await addon.process()
            if await runs_of(addon, flow["id"]):
                break
        [run] = await runs_of(addon, flow["id"])
        path = sqlite_url.split("///", 1)[1]
        taken: list[int] = []

        def other_worker_claims(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if not taken and statement.lstrip().startswith("SELECT flow_runs.id"):
                with sqlite3.connect(path) as other:
                    other.execute(
                        "UPDATE flow_runs SET status = 'RUNNING', locked_by = 'other', "
                        "locked_until = '2999-01-01 00:00:00.000000', attempts = attempts + 1 WHERE id = ?",
                        (run.id,),
                    )
                taken.append(run.id)

        engine = addon.runtime.engine.sync_engine
        event.listen(engine, "after_cursor_execute", other_worker_claims)
        try:
            async with addon.runtime.sessions.begin() as session:
                claimed = await claim(session, worker_id="this-worker", limit=10, lease_seconds=300, max_attempts=3,
                                      failure_threshold=5)
        finally:
            event.remove(engine, "after_cursor_execute", other_worker_claims)
        assert taken == [run.id]
        assert claimed == []
        async with addon.runtime.sessions() as s:
            stored = await s.get(FlowRun, run.id)
        assert stored is not None
        assert (stored.locked_by, stored.attempts) == ("other", 1)
