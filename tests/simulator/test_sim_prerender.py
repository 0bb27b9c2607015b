"""``--prerender``: time-entry and detailed-report pages are the bytes the rendering mode
answers, and a write is seen on the next request."""

from __future__ import annotations

from typing import Any

import httpx

from clockify_core.simulator import render
from clockify_core.simulator.testing import InProcessSimulator, in_process_simulator, small_config


async def _pages(sim: InProcessSimulator, ws_id: str, user_id: str) -> list[bytes]:
    client = sim.owner_client()
    out: list[bytes] = []
    for page in (1, 2, 40):
        r = await client.get(f"/api/v1/workspaces/{ws_id}/user/{user_id}/time-entries",
                             params={"page": page, "page-size": 25})
        assert r.status_code == 200
        out.append(r.content + r.headers["Last-Page"].encode())
    for page in (1, 3):
        report: dict[str, Any] = {"dateRangeStart": "2020-01-01T00:00:00.000Z", "dateRangeEnd": "2026-01-01T00:00:00.000Z",
                                  "sortOrder": "ASCENDING", "detailedFilter": {"page": page, "pageSize": 50}}
        r = await client.post(f"/reports/v1/workspaces/{ws_id}/reports/detailed", json=report)
        assert r.status_code == 200
        out.append(r.content + r.headers["Last-Page"].encode())
    return out


async def _write(client: httpx.AsyncClient, ws_id: str, entry: dict[str, Any], project_id: str) -> None:
    r = await client.put(f"/api/v1/workspaces/{ws_id}/time-entries/{entry['id']}", json={
        "start": entry["timeInterval"]["start"], "end": entry["timeInterval"]["end"], "description": "changed",
        "billable": True})
    assert r.status_code == 200, r.text
    r = await client.put(f"/api/v1/workspaces/{ws_id}/projects/{project_id}", json={"hourlyRate": {"amount": 12345}})
    assert r.status_code == 200, r.text


async def test_prerendered_pages_equal_rendered_ones_before_and_after_writes() -> None:
    config = small_config(scale={"workspaces": 1, "users": 4, "projects": 5, "time_entries": 600})
    async with in_process_simulator(config) as plain, \
            in_process_simulator(config.model_copy(update={"prerender": True})) as fast:
        ws = plain.workspace
        assert fast.workspace.id == ws.id
        assert fast.sim.prerendered[ws.id].api.count(None) < len(ws.entries.start) // 10  # rendered at start
        user = ws.owner_id
        assert await _pages(fast, ws.id, user) == await _pages(plain, ws.id, user)

        newest = render.time_entry(ws, ws.entries.by_user[ws.user_ix.get(user)].rows[-2])
        for sim in (plain, fast):
            await _write(sim.owner_client(), ws.id, newest, next(iter(ws.projects)))
        changed = await _pages(fast, ws.id, user)
        assert changed == await _pages(plain, ws.id, user)
        assert b"changed" in b"".join(changed)
