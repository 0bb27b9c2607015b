"""Many workspaces in one simulator: sizes and plans from the seed, Free's quota per workspace,
the marketplace burst (``install-all``) and traffic spread over every workspace."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from clockify_core.simulator.cli import app
from clockify_core.simulator.config import DataScale, FleetSettings, SimulatorConfig
from clockify_core.simulator.generate import fleet_member
from clockify_core.simulator.testing import (
    InProcessSimulator,
    ServedSimulator,
    in_process_simulator,
    small_config,
)
from tests.simulator.conftest import ADDON_URL, RecordingAddon, manifest

SCALE = DataScale(workspaces=40, users=6, projects=8, time_entries=3000, years=0.5)
FLEET = FleetSettings(small_min_entries=10, small_max_entries=300, large_fraction=0.1, free_fraction=0.3)


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return small_config(scale=SCALE, fleet=FLEET)


@pytest.fixture
async def fleet(simulator: InProcessSimulator) -> tuple[InProcessSimulator, RecordingAddon]:
    addon = RecordingAddon(manifest(events=("NEW_TIME_ENTRY", "TIME_ENTRY_UPDATED", "TIME_ENTRY_DELETED",
                                            "NEW_TIMER_STARTED", "TIMER_STOPPED")))
    await simulator.mount_addon(ADDON_URL, addon.app)
    return simulator, addon


def test_sizes_and_plans_are_mixed_and_come_from_the_seed() -> None:
    members = [fleet_member(7, i, SCALE, FLEET) for i in range(SCALE.workspaces)]
    assert members == [fleet_member(7, i, SCALE, FLEET) for i in range(SCALE.workspaces)]
    large = [i for i, (scale, _) in enumerate(members) if scale == SCALE]
    assert large == [0, 10, 20, 30]  # every 1/large_fraction-th, the first included
    small = [scale for scale, _ in members if scale != SCALE]
    assert all(FLEET.small_min_entries <= s.time_entries <= FLEET.small_max_entries for s in small)
    assert all(s.users <= 8 and s.projects <= 12 for s in small)
    free = sum(plan == "free" for _, plan in members)
    assert 0 < free < SCALE.workspaces
    assert [fleet_member(8, i, SCALE, FLEET) for i in range(SCALE.workspaces)] != members


async def test_generated_fleet_memory_follows_the_data(simulator: InProcessSimulator) -> None:
    spaces = list(simulator.sim.workspaces.values())
    assert len(spaces) == SCALE.workspaces
    large = [ws for ws in spaces if len(ws.entries) > FLEET.small_max_entries]
    small = [ws for ws in spaces if len(ws.entries) <= FLEET.small_max_entries]
    assert len(large) == 4
    # A small workspace stores a small entry table and few users: bytes follow the rows.
    assert max(ws.entries.nbytes() for ws in small) < min(ws.entries.nbytes() for ws in large) / 5
    assert max(len(ws.users) for ws in small) <= 8


async def test_free_workspace_says_free_and_gets_its_own_rolling_quota(simulator: InProcessSimulator) -> None:
    spaces = list(simulator.sim.workspaces.values())
    free = next(ws for ws in spaces if ws.plan == "free")
    paid = next(ws for ws in spaces if ws.plan == "paid")
    limit = simulator.sim.config.rate_limit.free_per_hour
    free_api, paid_api = simulator.owner_client(free), simulator.owner_client(paid)
    record = (await free_api.get(f"/api/v1/workspaces/{free.id}")).json()
    assert record["featureSubscriptionType"] == "FREE"
    assert (await paid_api.get(f"/api/v1/workspaces/{paid.id}")).json()["featureSubscriptionType"] != "FREE"
    for _ in range(limit - 1):
        assert (await free_api.get(f"/api/v1/workspaces/{free.id}/tags")).status_code == 200
    refused = await free_api.get(f"/api/v1/workspaces/{free.id}/tags")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 3000  # the oldest of the hour must age out first
    # The paid workspace (and every other) is untouched by that workspace's quota.
    for _ in range(limit + 5):
        assert (await paid_api.get(f"/api/v1/workspaces/{paid.id}/tags")).status_code == 200
    stats = (await simulator.client().get("/__sim/stats")).json()
    assert stats["freeQuota"] == {"limit": limit, "peak": limit}
    assert stats["throttledByWorkspace"] == {free.id: 1}
    assert stats["requestsByWorkspace"][paid.id] == limit + 6  # with the record read above
    assert stats["plans"][free.id] == "free"


async def test_install_all_is_a_burst_on_every_workspace_and_skips_installed(
    fleet: tuple[InProcessSimulator, RecordingAddon],
) -> None:
    simulator, addon = fleet
    control = simulator.client()
    first = simulator.sim.workspace()
    assert (await control.post("/__sim/install", json={"addonUrl": ADDON_URL, "workspaceId": first.id})).status_code == 201
    burst = await control.post("/__sim/install-all", json={"addonUrl": ADDON_URL, "concurrency": 4})
    assert burst.status_code == 200
    assert burst.json() == {"installed": SCALE.workspaces - 1, "skipped": 1, "failed": []}
    installed = addon.lifecycle_of("INSTALLED")
    assert sorted(c.body["workspaceId"] for c in installed) == sorted(simulator.sim.workspaces)
    again = await control.post("/__sim/install-all", json={"addonUrl": ADDON_URL})
    assert again.json() == {"installed": 0, "skipped": SCALE.workspaces, "failed": []}
    # Each workspace's installation is its own: uninstalling one leaves the others' targets alone.
    inst = simulator.sim.marketplace.of_workspace(first.id)[0]
    await control.post("/__sim/uninstall", json={"addonId": inst.addon_id})
    assert simulator.sim.marketplace.of_workspace(first.id) == []
    other = list(simulator.sim.workspaces)[1]
    assert len(simulator.sim.targets(other, "NEW_TIME_ENTRY", {})) == 1
    assert simulator.sim.targets(first.id, "NEW_TIME_ENTRY", {}) == []


async def test_install_all_reports_refusals_instead_of_stopping(fleet: tuple[InProcessSimulator, RecordingAddon]) -> None:
    simulator, addon = fleet
    addon.scripted["/lifecycle/installed"] = [500, 500]  # the first two INSTALLED calls fail
    burst = (await simulator.client().post("/__sim/install-all", json={"addonUrl": ADDON_URL, "concurrency": 1})).json()
    assert burst["installed"] == SCALE.workspaces - 2
    assert [f["error"] for f in burst["failed"]] == ["INSTALLED hook failed: 500"] * 2
    assert len(simulator.sim.marketplace.installations) == SCALE.workspaces - 2


async def test_traffic_over_all_workspaces_is_skewed_logged_and_delivered(
    fleet: tuple[InProcessSimulator, RecordingAddon],
) -> None:
    simulator, addon = fleet
    control = simulator.client()
    await control.post("/__sim/install-all", json={"addonUrl": ADDON_URL})
    before = {ws.id: ws.entries.version for ws in simulator.sim.workspaces.values()}
    run = await control.post("/__sim/traffic", json={"rate": 400, "duration": 1, "allWorkspaces": True, "wait": True})
    summary = run.json()
    assert summary["allWorkspaces"] is True
    assert summary["total"] == 400
    touched = simulator.sim.traffic.current.workspaces if simulator.sim.traffic.current else {}
    assert summary["workspacesTouched"] == len(touched) > SCALE.workspaces // 2  # spread over many
    counts = sorted(touched.values(), reverse=True)
    assert counts[0] > 4 * counts[len(counts) // 2]  # and skewed towards a few
    changed = {ws_id for ws_id, v in before.items() if simulator.sim.workspace(ws_id).entries.version != v}
    assert changed == set(touched)
    changes: list[dict[str, Any]] = (await control.get("/__sim/traffic/changes")).json()["changes"]
    assert {c["workspaceId"] for c in changes} == changed
    assert all(c["at"] > 0 and len(c["entryId"]) == 24 for c in changes)
    await simulator.drain(30)
    delivered = {c.body.get("workspaceId") for c in addon.webhooks}
    assert delivered == changed  # each workspace's own installation got its changes


async def test_a_single_workspace_run_is_unchanged() -> None:
    # Traffic to one workspace draws the same operations as before the fleet mode existed.
    async with in_process_simulator(small_config()) as one:
        summary = (await one.client().post("/__sim/traffic", json={"rate": 200, "duration": 0.5, "wait": True})).json()
        assert summary["workspacesTouched"] == 1
        assert summary["allWorkspaces"] is False
        assert summary["workspaceId"] == one.workspace.id


def test_cli_install_all_reports_what_the_burst_did(simulator_server: ServedSimulator) -> None:
    unreachable = "http://127.0.0.1:9"
    result = CliRunner().invoke(app, ["install", "--addon", unreachable, "--all", "--sim", simulator_server.base_url])
    assert result.exit_code == 1
    assert "Could not fetch http://127.0.0.1:9/manifest" in result.output
    both = CliRunner().invoke(app, ["install", "--addon", unreachable, "--all", "--workspace", "x",
                                    "--sim", simulator_server.base_url])
    assert both.exit_code == 2
    assert "leave out --workspace" in both.output
