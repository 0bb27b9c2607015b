"""Which source reads a range (report or per user), and what a per-user pull may tombstone."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import delete, select

import clockify_addon.app
import clockify_addon.settings
from clockify_core.config import SyncConfig
from clockify_core.installations.models import Installation
from clockify_core.installations.repository import installation_api
from clockify_core.jobs.models import Job
from clockify_core.mirror.models import TimeEntry, User
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.sync.timeentries import choose_source
from clockify_core.testing.addon import AddonHarness, installed_addon
from tests.sync.conftest import (
    OPERATOR_KEY,
    SYNC,
    assert_raw_match,
    assert_same,
    expected,
    mirrored,
    record,
    run_operator_job,
)


def test_auto_reads_per_user_unless_requests_bind() -> None:
    config = SyncConfig()  # 5,000-row user pages, 1,000-row report pages, ratio 2
    # 50 users, 300,000 entries: per user 109 requests, the report 300. Per user is faster per entry.
    assert choose_source(config, users=50, count=300_000, free_plan=False) == "user"
    # 500 users with 3,000 entries between them: 500 requests against the report's 3.
    assert choose_source(config, users=500, count=3_000, free_plan=False) == "report"
    # The ratio is the boundary: 6 requests per user against 3 report pages is twice as many.
    assert choose_source(config, users=6, count=3_000, free_plan=False) == "report"
    assert choose_source(config, users=5, count=3_000, free_plan=False) == "user"
    # The Free plan's 30 requests an hour bind always: the report needs the fewest.
    assert choose_source(config, users=2, count=300_000, free_plan=True) == "report"
    assert choose_source(SyncConfig(report_request_ratio=1000), users=500, count=3_000, free_plan=False) == "user"


@pytest.mark.parametrize("plan", ["PRO", "FREE"])
async def test_auto_source_by_plan(plan: str, simulator: InProcessSimulator, pg_url: str) -> None:
    """Small report pages make the report dearer in requests than per-user pages: paid plans read
    per user (after one probing report page per window); the Free plan reads the report."""
    recorder = record(simulator)
    sync = {**SYNC, "report_page_size": 50, "bootstrap_days": 1}
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url, sync=sync,
        security={"operator_api_key": OPERATOR_KEY},
        # The Free budget is raised so that this test is about the choice, not the waiting.
        rate_limit={"free_plan_per_hour": 1_000_000},
    ) as addon:
        await addon.process()
        async with addon.runtime.sessions.begin() as s:
            inst = await s.get(Installation, addon.workspace_id)
            assert inst is not None
            inst.subscription_plan = plan
        recorder.requests.clear()
        job = await run_operator_job(addon, "backfill", since="2020-01-01", window="year")
        ws = simulator.sim.workspace(addon.workspace_id)
        async with addon.runtime.sessions() as s:
            assert_same("time_entry", await mirrored(s, ws.id, "time_entry"), expected(ws, "time_entry"))
            await assert_raw_match(s, ws)
    reads = recorder.time_entry_reads()
    windows = {start for start, _, _ in reads}
    report_pages = {key for key in reads if key[1] == "report"}
    user_reads = {key for key in reads if key[1].startswith("user:")}
    if plan == "FREE":
        assert job.progress["source"] == "report"
        assert not user_reads
        assert len(report_pages) > 2 * len(windows)  # the report went on past its first page
    else:
        # A window whose first report page holds all of it ends there; the others go per user.
        years = Counter(datetime.fromtimestamp(ws.entries.start[r], UTC).year for r in ws.entries.by_start.rows)
        assert {start for start, _, _ in user_reads} == {f"{y}-01-01T00:00:00" for y, n in years.items() if n > 50}
        assert {page for _, _, page in report_pages} == {"1"}  # only the probe
        assert len({source for _, source, _ in user_reads}) == len(ws.users)


async def test_a_per_user_pull_leaves_users_it_did_not_list_alone(simulator: InProcessSimulator, pg_url: str) -> None:
    """The mirror does not know a user yet (it joined while webhooks were lost): a per-user pull
    cannot list them, so it must not mark their entries deleted either."""
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url,
        sync={**SYNC, "time_entry_source": "user"}, security={"operator_api_key": OPERATOR_KEY},
    ) as addon:
        await addon.process()
        ws = simulator.sim.workspace(addon.workspace_id)
        store = ws.entries
        stranger = ws.user_ix.ids[store.user[store.by_start.rows[0]]]
        theirs = {store.id_of(r) for r in store.by_start.rows if ws.user_ix.ids[store.user[r]] == stranger}
        async with addon.runtime.sessions.begin() as s:
            await s.execute(delete(User).where(User.workspace_id == ws.id, User.id == stranger))
        await run_operator_job(addon, "backfill", since="2020-01-01", window="year")
        async with addon.runtime.sessions() as s:
            assert_same("time_entry", await mirrored(s, ws.id, "time_entry"), expected(ws, "time_entry"))
            rows = (await s.execute(select(TimeEntry).where(TimeEntry.id.in_(theirs)))).scalars().all()
    assert theirs
    assert len(rows) == len(theirs)
    assert all(r.deleted_at is None and r.written_by == "bootstrap" for r in rows)  # kept, not re-listed


async def test_report_pages_read_the_simulated_report(addon_on_simulator: AddonHarness,
                                                      simulator: InProcessSimulator) -> None:
    """``WorkspaceApi.report_pages`` defaults to the spec's ``timeEntries`` key."""
    addon = addon_on_simulator
    async with addon.runtime.sessions() as s:
        inst = await s.get(Installation, addon.workspace_id)
    assert inst is not None
    api = installation_api(addon.runtime, inst)
    ws = simulator.sim.workspace(addon.workspace_id)
    now = datetime.now(UTC)
    body = {"dateRangeStart": "2000-01-01T00:00:00.000Z",
            "dateRangeEnd": (now + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z"), "exportType": "JSON"}
    pages = [page async for page in api.report_pages(f"/v1/workspaces/{ws.id}/reports/detailed", body, 200)]
    ids = [row["_id"] for page in pages for row in page]
    assert len(pages) == -(-len(ws.entries) // 200)
    assert sorted(ids) == sorted(ws.entries.id_of(r) for r in ws.entries.by_start.rows)


@pytest.fixture
async def addon_on_simulator(simulator: InProcessSimulator, pg_url: str) -> AsyncIterator[AddonHarness]:
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url,
    ) as addon:
        yield addon


class Deviant(httpx.AsyncBaseTransport):
    """Clockify answering time-entry lists 200 but without the list, once switched on."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.on = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if self.on and path.endswith("/reports/detailed"):
            return httpx.Response(200, json={"totals": []})
        if self.on and "/user/" in path and path.endswith("/time-entries"):
            return httpx.Response(200, json={"message": "no list here"})
        return await self.inner.handle_async_request(request)


@pytest.mark.parametrize("source", ["report", "user"])
async def test_a_list_without_its_items_fails_instead_of_deleting(
    source: str, simulator: InProcessSimulator, pg_url: str
) -> None:
    deviant = Deviant(simulator.transport)
    simulator.transport = deviant
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url,
        sync={**SYNC, "time_entry_source": source}, security={"operator_api_key": OPERATOR_KEY},
        worker={"max_attempts": 1},
    ) as addon:
        await addon.process()
        deviant.on = True
        r = await addon.client.post(f"/api/operator/workspaces/{addon.workspace_id}/backfill",
                                    json={"since": "2020-01-01", "window": "year"}, headers={"X-API-Key": OPERATOR_KEY})
        await addon.process()
        ws = simulator.sim.workspace(addon.workspace_id)
        async with addon.runtime.sessions() as s:
            job = await s.get(Job, r.json()["job_id"])
            assert_same("time_entry", await mirrored(s, ws.id, "time_entry"), expected(ws, "time_entry"))
        assert job is not None
        assert job.status == "FAILED"
        assert "without" in (job.error or "")
