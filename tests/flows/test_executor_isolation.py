"""The flow executor handles each installation's runs on its own: a run that breaks outside its
actions (here a run row an older version stored with a state this one cannot read) ends FAILED,
is logged and counted, and the other workspace's run in the same batch still runs."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from structlog.testing import capture_logs

from clockify_core.flows import executor
from clockify_core.flows.executor import run_due
from clockify_core.flows.models import FlowRun
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import ADDON_URL, AddonHarness
from clockify_core.testing.loopback import LoopbackServer
from tests.flows.conftest import create_flow, runs_of


async def test_a_run_that_breaks_outside_its_actions_does_not_stop_the_other_workspace(
    uw: AddonHarness, simulator: InProcessSimulator, loopback: LoopbackServer
) -> None:
    sim = simulator.sim
    other_ws = next(ws for ws in sim.workspaces if ws != uw.workspace_id)
    other = await simulator.install(ADDON_URL, workspace_id=other_ws)
    await uw.process()
    owner = sim.workspace(other_ws).owner_id
    other_token = other.signer.user_token(other_ws, other.addon_id, user_id=owner, backend_url=sim.urls.backend,
                                          reports_url=sim.urls.reports, workspace_role="OWNER")
    flows: dict[str, dict[str, Any]] = {}
    for ws, headers in ((uw.workspace_id, None), (other_ws, {"X-Addon-Token": other_token})):
        body = {"name": f"ping {ws}", "trigger": {"events": ["NEW_TIME_ENTRY"]},
                "actions": [{"id": "ping", "type": "http_request", "url": f"{loopback.base}/{ws}"}]}
        if headers is None:
            flows[ws] = await create_flow(uw, body)
        else:
            response = await uw.client.post("/api/flows", json=body, headers=headers)
            assert response.status_code == 201, response.text
            flows[ws] = response.json()
        client = simulator.owner_client(sim.workspace(ws))
        created = await client.post(f"/api/v1/workspaces/{ws}/time-entries", json={
            "start": "2025-06-01T08:00:00Z", "end": "2025-06-01T09:00:00Z", "description": "entry"})
        assert created.is_success, created.text
    for _ in range(50):
        await uw.process()
        statuses = [[r.status for r in await runs_of(uw, f["id"])] for f in flows.values()]
        if statuses == [["QUEUED"], ["QUEUED"]]:
            break
    assert statuses == [["QUEUED"], ["QUEUED"]]
    broken = uw.workspace_id
    async with uw.runtime.sessions.begin() as session:
        await session.execute(update(FlowRun).where(FlowRun.workspace_id == broken).values(state={"next": "first"}))

    with capture_logs() as logs:
        assert await run_due(uw.runtime) == 2  # one batch

    [failed] = await runs_of(uw, flows[broken]["id"])
    assert failed.status == "FAILED"
    assert failed.error is not None
    assert "unexpected error: ValueError" in failed.error
    [done] = await runs_of(uw, flows[other_ws]["id"])
    assert done.status == "SUCCEEDED"
    assert [r.path for r in loopback.requests] == [f"/{other_ws}"]
    assert uw.runtime.metrics.registry.get_sample_value(
        "installation_loop_errors_total", {"loop": "flow_executor"}) == 1
    [failure] = [e for e in logs if e["event"] == "flow_executor.installation_failed"]
    assert (failure["workspace_id"], failure["run_id"]) == (broken, failed.id)
    async with uw.runtime.sessions() as session:
        assert (await session.execute(select(FlowRun.status).where(FlowRun.status == "RUNNING"))).all() == []


@pytest.mark.parametrize("where", ["execute", "_perform"])
async def test_a_run_broken_by_the_database_stores_no_sql_or_parameters(
    uw: AddonHarness, simulator: InProcessSimulator, loopback: LoopbackServer, monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    """Item 10: an error stored for a run (outside its actions, or in one) names the failure, never the
    statement and its values (a run's error also reaches the flow's disabled_reason, which members read)."""
    flow = await create_flow(uw, {"name": "ping", "trigger": {"events": ["NEW_TIME_ENTRY"]},
                                  "actions": [{"id": "ping", "type": "http_request", "url": f"{loopback.base}/x"}]})
    client = simulator.owner_client(simulator.sim.workspace(uw.workspace_id))
    created = await client.post(f"/api/v1/workspaces/{uw.workspace_id}/time-entries", json={
        "start": "2025-06-01T08:00:00Z", "end": "2025-06-01T09:00:00Z", "description": "entry"})
    assert created.is_success, created.text
    for _ in range(50):
        await uw.process()
        if [r.status for r in await runs_of(uw, flow["id"])] == ["QUEUED"]:
            break

    async def broken(*_: Any) -> None:
        raise IntegrityError("INSERT INTO mirror_rows (raw) VALUES ($1)", ("private body text",), Exception("duplicate"))

    monkeypatch.setattr(executor, where, broken)
    assert await run_due(uw.runtime) == 1
    [failed] = await runs_of(uw, flow["id"])
    assert failed.status == "FAILED"
    assert failed.error is not None
    assert "IntegrityError" in failed.error
    assert "INSERT" not in failed.error
    assert "private body text" not in failed.error
