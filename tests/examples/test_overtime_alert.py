"""The overtime-alert example (examples/overtime_alert.py) installed into the simulator, end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import jsonschema
from sqlalchemy import select

from clockify_core.manifest.model import schema_1_5
from clockify_core.mirror.models import TimeEntry
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import AddonHarness, installed_addon
from clockify_core.testing.apps import running_app
from examples.overtime_alert import Settings, create_app

# A Saturday before the simulator's anchor: its generated entries fall on weekdays only.
DAY = "2025-05-31"
# The handler reads entries that arrive by webhook; the years of generated history are sync's business.
NO_HISTORY = {"sync": {"history_backfill": False}}


async def test_manifest_has_the_limit_setting_and_the_sidebar(tmp_path: Path) -> None:
    settings = Settings(base_url="https://overtime.example.com", database={"url": f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"},
                        worker={"enabled": False}, retention={"enabled": False}, sync={"scheduler": False})
    async with running_app(create_app(settings, configure_logs=False)) as client:
        response = await client.get("/manifest")
    assert response.status_code == 200
    doc = response.json()
    jsonschema.Draft4Validator(schema_1_5()).validate(doc)
    assert doc["key"] == "overtime-alert"
    assert doc["components"] == [
        {"type": "sidebar", "accessLevel": "EVERYONE", "path": "/overtime", "label": "Overtime"}
    ]
    tabs = {tab["id"]: tab for tab in doc["settings"]["tabs"]}
    limit = next(s for s in tabs["overtime"]["settings"] if s["id"] == "daily_limit_hours")
    assert (limit["type"], limit["value"], limit["accessLevel"]) == ("NUMBER", 8, "ADMINS")
    assert {w["event"] for w in doc["webhooks"]} == {
        "NEW_TIME_ENTRY", "TIMER_STOPPED", "TIME_ENTRY_UPDATED", "TIME_ENTRY_DELETED"
    }
    assert {"TAG_WRITE", "TIME_ENTRY_WRITE"} <= set(doc["scopes"])


async def _create_entry(client: httpx.AsyncClient, workspace_id: str, start: str, end: str, **fields: Any) -> str:
    response = await client.post(f"/api/v1/workspaces/{workspace_id}/time-entries",
                                 json={"start": f"{DAY}T{start}:00Z", "end": f"{DAY}T{end}:00Z", **fields})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _tag_names(client: httpx.AsyncClient, workspace_id: str, entry_id: str) -> set[str]:
    entry = (await client.get(f"/api/v1/workspaces/{workspace_id}/time-entries/{entry_id}", params={"hydrated": "true"})).json()
    return {tag["name"] for tag in entry["tags"]}


async def _sidebar(addon: AddonHarness, **params: str) -> httpx.Response:
    return await addon.client.get("/overtime", params={"day": DAY, **params})


async def test_an_entry_past_the_daily_limit_is_tagged_in_clockify(simulator: InProcessSimulator, db_url: str) -> None:
    async with installed_addon(simulator, create_app, Settings, db_url=db_url, **NO_HISTORY) as addon:
        await addon.process()  # webhooks registered, the mirror bootstrapped (recent weeks)
        ws, clockify = addon.workspace_id, simulator.owner_client()
        owner = simulator.workspace.owner_id
        before = await clockify.get(f"/api/v1/workspaces/{ws}/user/{owner}/time-entries",
                                    params={"start": f"{DAY}T00:00:00Z", "end": f"{DAY}T23:59:59Z"})
        assert before.json() == [], before.text

        project = next(iter(simulator.workspace.projects))
        morning = await _create_entry(clockify, ws, "08:00", "13:00", description="morning", projectId=project)
        await addon.process()
        assert "overtime" not in await _tag_names(clockify, ws, morning)  # 5 h: under the 8 h default

        evening = await _create_entry(clockify, ws, "14:00", "18:00", description="evening", projectId=project)
        await addon.process()
        assert "overtime" in await _tag_names(clockify, ws, evening)  # 9 h that day
        assert "overtime" not in await _tag_names(clockify, ws, morning)
        tagged = (await clockify.get(f"/api/v1/workspaces/{ws}/time-entries/{evening}")).json()
        assert (tagged["description"], tagged["projectId"]) == ("evening", project)  # the rest kept
        assert tagged["timeInterval"]["start"] == f"{DAY}T14:00:00Z"
        async with addon.runtime.sessions() as session:
            mirrored = await session.scalar(select(TimeEntry).where(TimeEntry.id == evening))
        assert mirrored is not None
        assert mirrored.tag_ids == tagged["tagIds"]  # Clockify's update came back to the mirror

        # One "overtime" tag in the workspace: created for the first entry past a limit, found after.
        tags = await clockify.get(f"/api/v1/workspaces/{ws}/tags", params={"name": "overtime", "strict-name-search": "true"})
        assert len(tags.json()) == 1


async def test_the_admins_limit_is_the_one_applied(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(simulator, create_app, Settings, db_url=pg_url, **NO_HISTORY) as addon:
        await addon.process()
        assert addon.installation is not None
        await simulator.sim.marketplace.update_settings(addon.installation.addon_id,
                                                         [{"id": "daily_limit_hours", "value": 2}])
        clockify = simulator.owner_client()
        entry = await _create_entry(clockify, addon.workspace_id, "09:00", "12:00")
        await addon.process()
        assert "overtime" in await _tag_names(clockify, addon.workspace_id, entry)  # 3 h over a 2 h limit


async def test_the_sidebar_needs_the_users_token(simulator: InProcessSimulator, db_url: str) -> None:
    async with installed_addon(simulator, create_app, Settings, db_url=db_url, **NO_HISTORY) as addon:
        await addon.process()
        await _create_entry(simulator.owner_client(), addon.workspace_id, "08:00", "17:30")
        await addon.process()

        page = await _sidebar(addon, auth_token=addon.user_token())
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert f"{DAY}: 9.5 h worked, daily limit 8 h" in page.text

        missing = await _sidebar(addon)
        assert missing.status_code == 422
        assert missing.headers["content-type"].startswith("application/problem+json")
        forged = await _sidebar(addon, auth_token=addon.user_token() + "x")
        assert forged.status_code == 401
        assert "9.5" not in forged.text
        bad_day = await _sidebar(addon, auth_token=addon.user_token(), day="yesterday")
        assert bad_day.status_code == 422
