"""Pagination: page from 1, page-size default 50 and max 5,000 (reports 1,000), Last-Page header."""

from __future__ import annotations

import pytest

from clockify_core.simulator.testing import InProcessSimulator


async def _user_with_entries(simulator: InProcessSimulator) -> tuple[str, int]:
    ws = simulator.workspace
    uid = ws.owner_id
    return uid, len(ws.entries.by_user[ws.user_ix.get(uid)])


async def test_pages_cover_every_entry_once(simulator: InProcessSimulator) -> None:
    ws = simulator.workspace
    uid, total = await _user_with_entries(simulator)
    client = simulator.owner_client()
    seen: list[str] = []
    page = 1
    while True:
        r = await client.get(f"/api/v1/workspaces/{ws.id}/user/{uid}/time-entries", params={"page": page, "page-size": 37})
        assert r.status_code == 200
        batch = r.json()
        seen += [e["id"] for e in batch]
        if r.headers["Last-Page"] == "true":
            break
        assert len(batch) == 37
        page += 1
    assert len(seen) == total == len(set(seen))
    starts = [ws.entries.start[ws.entries.row_of(i)] for i in seen]  # type: ignore[index]
    assert starts == sorted(starts, reverse=True)


async def test_exact_multiple_of_page_size(simulator: InProcessSimulator) -> None:
    ws = simulator.workspace
    uid, total = await _user_with_entries(simulator)
    client = simulator.owner_client()
    size = 10
    # Find a size that divides the total exactly, so the last full page must say Last-Page: true.
    size = next(s for s in range(10, total + 1) if total % s == 0)
    pages = total // size
    url = f"/api/v1/workspaces/{ws.id}/user/{uid}/time-entries"
    last_full = await client.get(url, params={"page": pages, "page-size": size})
    assert len(last_full.json()) == size
    assert last_full.headers["Last-Page"] == "true"
    if pages > 1:
        before = await client.get(url, params={"page": pages - 1, "page-size": size})
        assert before.headers["Last-Page"] == "false"
    empty = await client.get(url, params={"page": pages + 1, "page-size": size})
    assert empty.status_code == 200
    assert empty.json() == []
    assert empty.headers["Last-Page"] == "true"


async def test_default_and_maximum_page_size(simulator: InProcessSimulator) -> None:
    ws = simulator.workspace
    uid, total = await _user_with_entries(simulator)
    client = simulator.owner_client()
    url = f"/api/v1/workspaces/{ws.id}/user/{uid}/time-entries"
    assert len((await client.get(url)).json()) == min(50, total)
    everything = await client.get(url, params={"page-size": 5000})
    assert len(everything.json()) == total
    assert everything.headers["Last-Page"] == "true"
    too_big = await client.get(url, params={"page-size": 5001})
    assert too_big.status_code == 400
    assert (await client.get(url, params={"page-size": 0})).status_code == 400


@pytest.mark.parametrize("path", ["users", "projects", "clients", "tags", "user-groups"])
async def test_small_lists_paginate_too(simulator: InProcessSimulator, path: str) -> None:
    ws = simulator.workspace
    client = simulator.owner_client()
    first = await client.get(f"/api/v1/workspaces/{ws.id}/{path}", params={"page-size": 1})
    assert len(first.json()) == 1
    assert first.headers["Last-Page"] == "false"
    allr = await client.get(f"/api/v1/workspaces/{ws.id}/{path}", params={"page-size": 5000})
    n = len(allr.json())
    exact = await client.get(f"/api/v1/workspaces/{ws.id}/{path}", params={"page-size": n})
    assert exact.headers["Last-Page"] == "true"
    assert len(exact.json()) == n


async def test_report_pages_and_cap(simulator: InProcessSimulator) -> None:
    ws = simulator.workspace
    client = simulator.owner_client()
    url = f"/reports/v1/workspaces/{ws.id}/reports/detailed"
    base = {"dateRangeStart": "2000-01-01T00:00:00Z", "dateRangeEnd": "2030-01-01T00:00:00Z"}
    live = len(ws.entries)
    ids: list[str] = []
    page = 1
    while True:
        r = await client.post(url, json=base | {"detailedFilter": {"page": page, "pageSize": 1000}})
        assert r.status_code == 200
        body = r.json()
        assert body["totals"][0]["entriesCount"] == live
        ids += [e["_id"] for e in body["timeEntries"]]
        if r.headers["Last-Page"] == "true":
            break
        page += 1
    assert len(ids) == live == len(set(ids))
    assert (await client.post(url, json=base | {"detailedFilter": {"page": 1, "pageSize": 1001}})).status_code == 400
    beyond = await client.post(url, json=base | {"detailedFilter": {"page": page + 1, "pageSize": 1000}})
    assert beyond.json()["timeEntries"] == []
    assert beyond.headers["Last-Page"] == "true"


async def test_report_filters(simulator: InProcessSimulator) -> None:
    ws = simulator.workspace
    client = simulator.owner_client()
    uid = ws.owner_id
    url = f"/reports/v1/workspaces/{ws.id}/reports/detailed"
    body = {"dateRangeStart": "2000-01-01T00:00:00Z", "dateRangeEnd": "2030-01-01T00:00:00Z",
            "users": {"ids": [uid], "contains": "CONTAINS"}, "billable": True,
            "detailedFilter": {"page": 1, "pageSize": 1000}}
    entries = (await client.post(url, json=body)).json()["timeEntries"]
    assert entries
    assert all(e["userId"] == uid and e["billable"] for e in entries)
