"""A workspace whose purge fails is logged, counted and skipped: the other uninstalled workspaces are purged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from structlog.testing import capture_logs

from clockify_addon.app import PROFILE
from clockify_addon.settings import Settings
from clockify_core.db.base import utcnow
from clockify_core.installations.models import Installation
from clockify_core.mirror.models import TimeEntry
from clockify_core.observability.metrics import Metrics
from clockify_core.retention import service as retention_service
from clockify_core.retention.service import retention_pass
from clockify_core.runtime import Runtime, open_runtime
from clockify_core.testing.faults import refused_for_workspace


@pytest.fixture
async def runtime(db_url: str) -> AsyncIterator[Runtime]:
    settings = Settings(database={"url": db_url, "run_migrations": False}, retention={"batch_size": 10})
    async with open_runtime(settings, PROFILE, Metrics()) as rt:
        yield rt


async def _entries(runtime: Runtime, workspace_id: str) -> int:
    async with runtime.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(TimeEntry).where(TimeEntry.workspace_id == workspace_id)) or 0)


async def _purge_after(runtime: Runtime, workspace_id: str) -> object:
    async with runtime.sessions() as s:
        installation = await s.get(Installation, workspace_id)
        assert installation is not None
        return installation.purge_after


async def test_a_workspace_the_database_will_not_purge_does_not_stop_the_others(runtime: Runtime) -> None:
    now = utcnow()
    async with runtime.sessions.begin() as s:
        # "stuck" is due first, so the healthy one comes after the failure.
        s.add(Installation(workspace_id="stuck", addon_id="a", status="DELETED", purge_after=now - timedelta(days=2),
                           settings=[{"id": "sync_interval_minutes", "value": 99999999999}]))
        s.add(Installation(workspace_id="gone", addon_id="b", status="DELETED", purge_after=now - timedelta(days=1)))
        for ws in ("stuck", "gone"):
            for n in range(25):
                s.add(TimeEntry(workspace_id=ws, id=f"te{n}", raw={}, written_by="sync"))
    async with refused_for_workspace(runtime.engine, "time_entries", "stuck", "DELETE"):
        with capture_logs() as logs:
            outcome = await retention_pass(runtime, now=now)
    assert outcome.complete
    assert outcome.removed["uninstalled_workspaces"] == 25  # all of "gone"'s
    assert await _entries(runtime, "gone") == 0
    assert await _purge_after(runtime, "gone") is None
    assert await _entries(runtime, "stuck") == 25
    assert await _purge_after(runtime, "stuck") is not None  # still due: the next pass tries again
    assert runtime.metrics.registry.get_sample_value("installation_loop_errors_total", {"loop": "retention"}) == 1
    [failure] = [e for e in logs if e["event"] == "retention.installation_failed"]
    assert failure["workspace_id"] == "stuck"

    again = await retention_pass(runtime, now=now)
    assert again.removed["uninstalled_workspaces"] == 25
    assert await _entries(runtime, "stuck") == 0
    assert await _purge_after(runtime, "stuck") is None
    assert runtime.metrics.registry.get_sample_value("installation_loop_errors_total", {"loop": "retention"}) == 1


async def test_the_due_list_is_read_a_page_at_a_time_past_the_ones_that_fail(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With pages of two, seven due workspaces (the first of them stuck, and two sharing one
    ``purge_after``) are all reached in one pass: the stuck one stays due, the others go."""
    monkeypatch.setattr(retention_service, "DUE_PAGE", 2)
    now = utcnow()
    names = [f"ws{n}" for n in range(7)]
    async with runtime.sessions.begin() as s:
        for n, ws in enumerate(names):
            # ws3 and ws4 share one instant: the page boundary falls between equal keys.
            due = now - timedelta(hours=10 - min(n, 3))
            s.add(Installation(workspace_id=ws, addon_id=ws, status="DELETED", purge_after=due))
            s.add(TimeEntry(workspace_id=ws, id="te", raw={}, written_by="sync"))
    async with refused_for_workspace(runtime.engine, "time_entries", "ws0", "DELETE"):
        outcome = await retention_pass(runtime, now=now)
    assert outcome.complete
    assert outcome.removed["uninstalled_workspaces"] == 6
    assert [await _entries(runtime, ws) for ws in names] == [1, 0, 0, 0, 0, 0, 0]
    assert await _purge_after(runtime, "ws0") is not None
