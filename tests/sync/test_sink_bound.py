"""Memory and CPU of a bulk pull's pages: rows held by the sink stay under ``Sink.max_rows``
whatever the number of fetch tasks (every row still written), and a page is parsed and
converted with the cyclic garbage collector off, which is on again afterwards."""

from __future__ import annotations

import asyncio
import gc

from sqlalchemy import func, select

from clockify_core.installations.repository import get_installation, installation_api
from clockify_core.mirror.models import TimeEntry
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.sync.bulk import BulkWriter
from clockify_core.sync.fetch import Fetcher, collector_paused
from clockify_core.sync.progress import Progress
from clockify_core.sync.sink import Sink
from clockify_core.sync.timeentries import USER_PATH
from tests.sync.conftest import job_context

PAGE, BATCH, FETCHERS, PAGES_EACH = 40, 40, 6, 5


async def test_rows_held_stay_under_the_bound_with_many_fetch_tasks(simulator: InProcessSimulator, pg_url: str) -> None:
    async with job_context(simulator, pg_url) as (addon, ctx):
        runtime, ws = addon.runtime, addon.workspace_id
        writer = BulkWriter(runtime.sessions, postgres=True, direct=True, guard=ctx.ensure_live)
        sink = Sink(writer, "time_entry", ws, written_by="backfill", batch_rows=BATCH, writers=1,
                    progress=Progress(ctx, runtime.metrics))
        assert sink.max_rows == BATCH * 3
        peak = 0

        async def fetcher(number: int) -> None:
            nonlocal peak
            for page in range(PAGES_EACH):
                async with sink.room(PAGE):
                    await asyncio.sleep(0)  # the request: far quicker than a database write here
                    sink.take([{"id": f"e-{number}-{page}-{i}", "userId": "u1",
                                "timeInterval": {"start": "2024-01-01T08:00:00Z", "end": "2024-01-01T09:00:00Z"}}
                               for i in range(PAGE)])
                    peak = max(peak, sink.held)
                await sink.ready()

        await asyncio.gather(*(fetcher(n) for n in range(FETCHERS)))
        written = await sink.close()
        # Without the bound each of the six fetch tasks would hold a page beyond the queue and the writer.
        assert peak <= sink.max_rows + PAGE
        assert sink.held == 0
        assert written == FETCHERS * PAGES_EACH * PAGE
        async with runtime.sessions() as session:
            stored = await session.scalar(select(func.count()).select_from(TimeEntry).where(
                TimeEntry.workspace_id == ws, TimeEntry.written_by == "backfill"))
        assert stored == written


async def test_pages_larger_than_the_bound_and_a_part_batch_never_stall(
    simulator: InProcessSimulator, pg_url: str
) -> None:
    """Requests promise a whole page, larger here than the bound, and pages come back short: a
    fetch task waiting for room behind a buffered part batch must not wait forever."""
    async with job_context(simulator, pg_url) as (addon, ctx):
        runtime, ws = addon.runtime, addon.workspace_id
        sink = Sink(BulkWriter(runtime.sessions, postgres=True), "time_entry", ws, written_by="backfill",
                    batch_rows=10, writers=1, progress=Progress(ctx, runtime.metrics))

        async def fetcher(number: int) -> None:
            for page in range(4):
                async with sink.room(sink.max_rows * 2):
                    await asyncio.sleep(0)
                    sink.take([{"id": f"short-{number}-{page}-{i}"} for i in range(3)])
                await sink.ready()

        async with asyncio.timeout(30):
            await asyncio.gather(*(fetcher(n) for n in range(4)))
            assert await sink.close() == 4 * 4 * 3


def test_the_collector_pause_restores_what_it_found() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()


async def test_a_page_is_parsed_and_taken_with_the_collector_off(simulator: InProcessSimulator, pg_url: str) -> None:
    async with job_context(simulator, pg_url) as (addon, ctx):
        runtime, ws = addon.runtime, addon.workspace_id
        async with runtime.sessions() as session:
            installation = await get_installation(session, ws)
        assert installation is not None
        fetcher = Fetcher(installation_api(runtime, installation), runtime.settings.sync, runtime.settings.http,
                          Progress(ctx, runtime.metrics))
        user = simulator.sim.workspace(ws).owner_id
        seen: list[tuple[int, bool]] = []
        count, _ = await fetcher.page_into(lambda items: seen.append((len(items), gc.isenabled())),
                                           USER_PATH.format(workspace=ws, user=user), 1, 50)
        assert count > 0
        assert seen == [(count, False)]
        assert gc.isenabled()
