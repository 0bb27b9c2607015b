"""The operator API for pulls: refused without the key, queues and reports jobs with it."""

from __future__ import annotations

import pytest

import api_studio.app
import api_studio.settings
import clockify_addon.app
import clockify_addon.settings
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import installed_addon
from tests.sync.conftest import SYNC

KEY = "operator-key-for-tests-0123456789"


async def test_refused_without_a_configured_key(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url, sync=SYNC,
    ) as addon:
        url = f"/api/operator/workspaces/{addon.workspace_id}/sync"
        r = await addon.client.post(url, headers={"X-API-Key": "anything"})
        assert r.status_code == 403
        assert r.headers["content-type"] == "application/problem+json"
        assert (await addon.client.get("/api/operator/jobs", headers={"X-API-Key": ""})).status_code == 403


async def test_key_checked_then_jobs_queued_listed_and_cancelled(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url, sync=SYNC,
        security={"operator_api_key": KEY},
    ) as addon:
        await addon.process()
        ws, client = addon.workspace_id, addon.client
        ok = {"X-API-Key": KEY}
        for headers in ({}, {"X-API-Key": "wrong-key"}, {"X-API-Key": KEY[:-1]}):
            r = await client.post(f"/api/operator/workspaces/{ws}/sync", headers=headers)
            assert r.status_code == 401, headers
        r = await client.get("/api/operator/jobs")
        assert r.status_code == 401

        sync = (await client.post(f"/api/operator/workspaces/{ws}/sync", headers=ok)).json()
        again = (await client.post(f"/api/operator/workspaces/{ws}/sync", headers=ok)).json()
        assert sync["job_id"] == again["job_id"]  # an equal queued job is not queued twice
        backfill = await client.post(f"/api/operator/workspaces/{ws}/backfill", headers=ok,
                                     json={"since": "2024-01-01", "until": "2024-03-01", "window": "week"})
        assert backfill.status_code == 202
        boot = await client.post(f"/api/operator/workspaces/{ws}/bootstrap", headers=ok)
        assert boot.status_code == 202
        everyone = await client.post("/api/operator/sync", headers=ok, json={})
        assert [q["workspace_id"] for q in everyone.json()] == [ws]

        jobs = (await client.get("/api/operator/jobs", params={"workspace_id": ws, "status": "QUEUED"}, headers=ok)).json()
        kinds = {j["kind"]: j for j in jobs}
        assert set(kinds) == {"sync", "backfill", "bootstrap"}
        assert kinds["backfill"]["params"] == {"since": "2024-01-01T00:00:00+00:00", "until": "2024-03-01T00:00:00+00:00",
                                               "window": "week"}
        one = (await client.get(f"/api/operator/jobs/{sync['job_id']}", headers=ok)).json()
        assert one["kind"] == "sync"
        assert one["params"]["reason"] == "operator"

        cancelled = await client.post(f"/api/operator/jobs/{kinds['bootstrap']['id']}/cancel", headers=ok)
        assert cancelled.json()["status"] == "CANCELLED"
        assert (await client.post(f"/api/operator/jobs/{kinds['bootstrap']['id']}/cancel", headers=ok)).status_code == 409
        assert (await client.get("/api/operator/jobs/987654", headers=ok)).status_code == 404

        await addon.process()
        done = (await client.get("/api/operator/jobs", params={"kind": "backfill"}, headers=ok)).json()
        assert done[0]["status"] == "DONE"
        assert done[0]["progress"]["percent"] == 100
        state = (await client.get(f"/api/operator/workspaces/{ws}/sync-state", headers=ok)).json()
        assert {k["kind"] for k in state["kinds"]} >= {"time_entry", "project"}
        assert state["next_run_at"] is not None


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/operator/workspaces/{ws}/backfill", {"since": "2024-03-01", "until": "2024-01-01"}, 422),
        ("/api/operator/workspaces/{ws}/backfill", {"since": "2024-03-01", "window": "fortnight"}, 422),
        ("/api/operator/workspaces/{ws}/backfill", {"since": "yesterday"}, 422),
        ("/api/operator/workspaces/5f00000000000000000000aa/sync", {}, 404),
    ],
)
async def test_bad_requests_are_problems(
    path: str, body: dict[str, object], status: int, simulator: InProcessSimulator, pg_url: str
) -> None:
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url, sync=SYNC,
        security={"operator_api_key": KEY},
    ) as addon:
        r = await addon.client.post(path.format(ws=addon.workspace_id), json=body, headers={"X-API-Key": KEY})
        assert r.status_code == status, r.text
        assert r.headers["content-type"] == "application/problem+json"


async def test_backfill_dates_out_of_range_are_refused_before_queueing(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url, sync=SYNC,
        security={"operator_api_key": KEY},
    ) as addon:
        url = f"/api/operator/workspaces/{addon.workspace_id}/backfill"
        cases = [
            ({"since": "0001-01-01T00:00:00+05:00"}, "since"),  # year 1 does not even exist in UTC
            ({"since": "1999-12-31"}, "since"),
            ({"since": "2999-01-01"}, "since"),
            ({"since": "2024-01-01", "until": "9999-12-31T23:59:59"}, "until"),
        ]
        for body, field in cases:
            r = await addon.client.post(url, json=body, headers={"X-API-Key": KEY})
            assert r.status_code == 422, (body, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["errors"][0]["loc"] == [field], r.json()
        r = await addon.client.get("/api/operator/jobs", params={"kind": "backfill"}, headers={"X-API-Key": KEY})
        assert r.json() == []
        ok = await addon.client.post(url, json={"since": "2000-01-01T00:00:00+05:00"}, headers={"X-API-Key": KEY})
        assert ok.status_code == 422  # 1999-12-31T19:00Z: before the first day
        ok = await addon.client.post(url, json={"since": "2000-01-01T00:00:00-05:00"}, headers={"X-API-Key": KEY})
        assert ok.status_code == 202, ok.text
        job = (await addon.client.get(f"/api/operator/jobs/{ok.json()['job_id']}", headers={"X-API-Key": KEY})).json()
        assert job["params"]["since"] == "2000-01-01T05:00:00+00:00"  # stored in UTC


async def test_inactive_workspace_and_reference_only_tier_refuse(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(
        simulator, api_studio.app.create_app, api_studio.settings.Settings, db_url=pg_url, sync=SYNC,
        security={"operator_api_key": KEY},
    ) as addon:
        await addon.process()
        headers = {"X-API-Key": KEY}
        r = await addon.client.post(f"/api/operator/workspaces/{addon.workspace_id}/backfill", headers=headers,
                                    json={"since": "2024-01-01"})
        assert r.status_code == 409  # api_studio mirrors reference data only
        await simulator.sim.marketplace.change_status(addon.installation.addon_id, "INACTIVE")
        r = await addon.client.post(f"/api/operator/workspaces/{addon.workspace_id}/sync", headers=headers)
        assert r.status_code == 409
