"""The request log (`/__sim/requests`): every authenticated API request, whose budget it spent, 429 or not."""

from __future__ import annotations

from clockify_core.simulator.config import RateLimitSettings
from clockify_core.simulator.testing import in_process_simulator, small_config
from tests.simulator.conftest import ADDON_URL, RecordingAddon, manifest


async def test_the_log_lists_requests_by_addon_and_workspace_with_429s_marked() -> None:
    frozen = [100.0]
    wall = [1_700_000_000.0]
    config = small_config(rate_limit=RateLimitSettings(rate=1, burst=2))
    async with in_process_simulator(config, monotonic=lambda: frozen[0], clock=lambda: wall[0]) as simulator:
        addon = RecordingAddon(manifest(events=(), scopes=["TAG_READ"]))
        await simulator.mount_addon(ADDON_URL, addon.app)
        inst = await simulator.install(ADDON_URL)
        ws = simulator.workspace
        control = simulator.client()
        assert (await control.get("/__sim/requests")).json() == {"requests": []}

        api = simulator.client(token=inst.token)
        codes = []
        for _ in range(3):
            codes.append((await api.get(f"/api/v1/workspaces/{ws.id}/tags")).status_code)
            wall[0] += 0.25
        assert codes == [200, 200, 429]
        owner = simulator.owner_client()
        assert (await owner.get(f"/api/v1/workspaces/{ws.id}/tags")).status_code == 200  # the owner's own budget
        assert (await simulator.client().get(f"/api/v1/workspaces/{ws.id}/tags")).status_code == 401  # not logged

        mine = (await control.get("/__sim/requests", params={"addonId": inst.addon_id})).json()["requests"]
        assert [(r["at"], r["method"], r["path"], r["throttled"]) for r in mine] == [
            (1_700_000_000.0 + 0.25 * i, "GET", f"/api/v1/workspaces/{ws.id}/tags", i == 2) for i in range(3)
        ]
        assert {(r["workspaceId"], r["addonId"]) for r in mine} == {(ws.id, inst.addon_id)}

        everyone = (await control.get("/__sim/requests", params={"workspaceId": ws.id})).json()["requests"]
        assert len(everyone) == 4
        assert everyone[-1]["addonId"] is None
        assert everyone[-1]["userId"] == ws.owner_id
        other = next(w for w in simulator.sim.workspaces if w != ws.id)
        assert (await control.get("/__sim/requests", params={"workspaceId": other})).json() == {"requests": []}
        latest = (await control.get("/__sim/requests", params={"limit": 2})).json()["requests"]
        assert latest == everyone[-2:]

        assert (await control.delete("/__sim/requests")).status_code == 204
        assert (await control.get("/__sim/requests")).json() == {"requests": []}
