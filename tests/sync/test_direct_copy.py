"""A loader's direct COPY (sync.bulk) survives a batch that meets rows already there: that
batch is merged, the next one is copied again, and only conflicts in a row switch the job
to the merge for good. A bootstrap whose workspace already has a row (a running timer it
wrote first, an entry a webhook wrote) keeps loading the rest by COPY.

Rows written ahead of the listing that returns them (``upsert(ahead=True)``) are merged
within their batch, so they cost no failed COPY."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

import clockify_addon.app
import clockify_addon.settings
from clockify_core.jobs.models import Job
from clockify_core.mirror.models import TimeEntry
from clockify_core.simulator import render
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.sync.bulk import DIRECT_GIVE_UP, BulkWriter
from clockify_core.sync.progress import Progress
from clockify_core.testing.addon import AddonHarness, installed_addon
from tests.sync.conftest import SYNC, job_context

# Small batches, one window and one writer at a time, per-user pages: batches in a known order.
LOADING = {**SYNC, "batch_rows": 50, "window_concurrency": 1, "writers": 1, "time_entry_source": "user"}


async def bootstrapped(addon: AddonHarness) -> dict[str, Any]:
    """Run the queued jobs; the bootstrap's progress, once it is DONE with the simulator's
    every live time entry mirrored."""
    await addon.process()
    ws = addon.workspace_id
    async with addon.runtime.sessions() as session:
        job = await session.scalar(select(Job).where(Job.kind == "bootstrap"))
        mirrored = await session.scalar(select(func.count()).select_from(TimeEntry).where(
            TimeEntry.workspace_id == ws, TimeEntry.deleted_at.is_(None)))
    assert job is not None
    assert job.status == "DONE", job.error
    assert mirrored == len(addon.sim.sim.workspace(ws).entries)
    return dict(job.progress)


def entries(first: int, last: int, description: str = "loaded") -> list[dict[str, Any]]:
    return [{"id": f"e-{n:04d}", "userId": "u1", "description": description,
             "timeInterval": {"start": "2024-01-01T08:00:00Z", "end": "2024-01-01T09:00:00Z"}}
            for n in range(first, last)]


async def test_a_conflicting_batch_is_merged_and_the_next_is_copied_again(
    simulator: InProcessSimulator, pg_url: str
) -> None:
    assert DIRECT_GIVE_UP == 2
    async with job_context(simulator, pg_url) as (addon, ctx):
        runtime, ws = addon.runtime, addon.workspace_id
        progress = Progress(ctx, runtime.metrics)
        writer = BulkWriter(runtime.sessions, postgres=True, direct=True, guard=ctx.ensure_live, progress=progress)

        async def load(first: int, last: int, description: str = "loaded") -> tuple[int, int]:
            assert await writer.upsert("time_entry", ws, entries(first, last, description), written_by="bootstrap") \
                == last - first
            return progress.direct_rows, progress.merged_rows

        assert await load(0, 100) == (100, 0)
        # Five ids exist already: the whole batch is merged, and its new rows are stored too.
        assert await load(95, 195, "changed") == (100, 100)
        assert writer.direct
        assert await load(200, 300) == (200, 100)  # copied again
        assert await load(250, 350) == (200, 200)
        assert writer.direct
        assert await load(340, 440) == (200, 300)  # the second conflict in a row
        assert not writer.direct
        assert await load(500, 600) == (200, 400)  # new rows, but merged for good now

        await ctx.checkpoint()
        async with runtime.sessions() as session:
            job = await session.get(Job, ctx.job.id)
            stored = dict((await session.execute(
                select(TimeEntry.description, func.count()).where(TimeEntry.workspace_id == ws)
                .group_by(TimeEntry.description))).all())
        assert job is not None
        assert (job.progress["direct_rows"], job.progress["merged_rows"]) == (200, 400)
        # 0-194, 200-439 and 500-599, each once; the merged batch's content won.
        assert stored == {"loaded": 95 + 240 + 100, "changed": 100}


async def test_a_bootstrap_copies_around_a_row_that_was_already_mirrored(
    simulator: InProcessSimulator, pg_url: str
) -> None:
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url,
        sync=LOADING,
    ) as addon:
        ws = simulator.sim.workspace(addon.workspace_id)
        # The oldest entry, as a webhook would have mirrored it before the bootstrap reached it.
        oldest = ws.entries.by_start.rows[0]
        webhook = BulkWriter(addon.runtime.sessions, postgres=True)
        assert await webhook.upsert("time_entry", ws.id, [render.time_entry(ws, oldest)], written_by="webhook") == 1
        progress = await bootstrapped(addon)
        running = len(ws.entries.running)
        assert running == 2
        # Merged: the batch holding the oldest entry, and the running timers twice (written
        # first, then listed again in their window, without a failed COPY). Everything else
        # by COPY. Before, the first conflict sent every later batch through the merge.
        assert 1 + 2 * running <= progress["merged_rows"] <= 50 + 2 * running
        assert progress["direct_rows"] >= len(ws.entries) - 50


async def test_rows_written_ahead_are_merged_within_a_copied_batch(simulator: InProcessSimulator, pg_url: str) -> None:
    async with job_context(simulator, pg_url) as (addon, ctx):
        runtime, ws = addon.runtime, addon.workspace_id
        progress = Progress(ctx, runtime.metrics)
        writer = BulkWriter(runtime.sessions, postgres=True, direct=True, guard=ctx.ensure_live, progress=progress)
        assert await writer.upsert("time_entry", ws, entries(7, 9, "running"), written_by="bootstrap", ahead=True) == 2
        assert (progress.direct_rows, progress.merged_rows) == (0, 2)
        for first in (0, 10, 20):  # no failed COPY: the two rows never count as a conflict in a row
            await writer.upsert("time_entry", ws, entries(first, first + 10), written_by="bootstrap")
        assert writer.direct
        assert writer.conflicts == 0
        assert (progress.direct_rows, progress.merged_rows) == (28, 4)
        async with runtime.sessions() as session:
            running = await session.scalar(select(func.count()).select_from(TimeEntry).where(
                TimeEntry.workspace_id == ws, TimeEntry.description == "running"))
            total = await session.scalar(select(func.count()).select_from(TimeEntry).where(TimeEntry.workspace_id == ws))
        assert (running, total) == (0, 30)  # the listing's later version won


async def test_a_later_claim_remembers_the_timers_written_ahead(simulator: InProcessSimulator, pg_url: str) -> None:
    """A bootstrap given back after its first window: the claim that reaches the running
    timers' window still merges them within their batch, without a failed COPY."""
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url,
        sync={**LOADING, "slice_seconds": 0},
    ) as addon:
        ws = simulator.sim.workspace(addon.workspace_id)
        progress = await bootstrapped(addon)
        assert progress["slices"] >= 1  # the timers' window was reached by a later claim
        # The timers when written first, and again within their batch: nothing else merged.
        assert progress["merged_rows"] == 2 * len(ws.entries.running) == 4
