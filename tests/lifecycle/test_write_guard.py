"""The lock a job's write transaction holds on its job row (PostgreSQL): the job's own
heartbeats and checkpoints pass it, an uninstall's cancel waits for the write to commit,
and the job then finds itself cancelled."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from clockify_core.jobs import queue
from clockify_core.jobs.models import Job
from clockify_core.jobs.worker import JobLost
from clockify_core.simulator.testing import InProcessSimulator
from tests.sync.conftest import job_context


async def test_a_checkpoint_passes_a_write_in_flight_and_an_uninstall_waits_for_it(
    simulator: InProcessSimulator, pg_url: str
) -> None:
    async with job_context(simulator, pg_url) as (addon, ctx):
        runtime, ws = addon.runtime, addon.workspace_id
        cancelling: list[int] = []

        async def uninstall_cancel() -> int:
            async with runtime.sessions.begin() as session:
                cancelling.append(int(await session.scalar(text("SELECT pg_backend_pid()")) or 0))
                return await queue.cancel_workspace(session, ws)

        async with ctx.transaction():  # a write under way: the guard is held until it ends
            ctx.report(rows=1)
            # With a share lock this waited for the transaction above, held by this very task.
            await asyncio.wait_for(ctx.checkpoint(), timeout=20)
            cancel = asyncio.create_task(uninstall_cancel())
            async with asyncio.timeout(20), runtime.sessions() as watch:
                while True:
                    waiting = await watch.scalar(
                        text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                        {"pid": cancelling[0]},
                    ) if cancelling else None
                    if waiting == "Lock":
                        break
                    await asyncio.sleep(0.02)
            assert not cancel.done()  # it waits for the write to commit
        assert await cancel >= 1
        async with runtime.sessions() as session:
            job = await session.get(Job, ctx.job.id)
        assert job is not None
        assert (job.status, job.progress["rows"]) == ("CANCELLED", 1)
        with pytest.raises(JobLost):
            async with ctx.transaction():
                pass
