"""Job handlers: ``bootstrap``, ``sync``, ``backfill`` and ``reconcile`` (see docs/sync.md).

Registered by the SYNC capability (:mod:`clockify_core.sync.capability`). Each is resumable: what is done
is saved in the job's cursor (``JobContext.checkpoint``), so a crashed or deferred job
continues where it stopped, and since every write is an idempotent upsert, redoing the
unfinished window neither loses nor duplicates a row.

Bootstrap and backfill work in slices: after ``sync.slice_seconds`` they save their
cursor and go back to the queue (:func:`~clockify_core.sync.run.give_back`), so other
workspaces' jobs are claimed in between (docs/sync.md, "Fairness"). Bootstrap mirrors
the recent ``sync.bootstrap_days`` first, then queues a backfill of the whole history
(the ``history_months`` setting caps it), which the queue runs after every other
workspace's bootstraps and syncs. On the Free plan the time windows are years
(:meth:`~clockify_core.sync.run.Pull.window`: its budget is counted in requests), unless a
backfill's parameters name a window (the bootstrap queues its history with the window it used).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any

import structlog

from clockify_core.db.base import utcnow
from clockify_core.installations.settings import BACKFILL_MONTHS, HISTORY_MONTHS, number
from clockify_core.jobs import queue
from clockify_core.jobs.models import JobKind
from clockify_core.jobs.worker import JobContext
from clockify_core.mirror.mapping import parse_time
from clockify_core.runtime import Runtime
from clockify_core.sync import state
from clockify_core.sync.endpoints import reference_endpoints
from clockify_core.sync.models import WORKSPACE_KIND
from clockify_core.sync.reference import due, pull_reference, pull_workspace
from clockify_core.sync.run import BadParams, Pull, give_back, guarded
from clockify_core.sync.scheduler import next_run
from clockify_core.sync.service import EARLIEST
from clockify_core.sync.timeentries import (
    KIND,
    FeedUnavailable,
    Window,
    entry_start,
    floor_to,
    merge_days,
    windows,
)

# A backfill with this parameter walks back from ``until`` through the whole history.
HISTORY_ALL = "all"

log = structlog.get_logger(__name__)

REFERENCE_STEP = "reference"


def _time(value: Any) -> datetime | None:
    try:
        return parse_time(value) if isinstance(value, str) else None
    except OverflowError:  # e.g. year 1 with a positive offset: no such instant in UTC
        return None


def months_before(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 - months
    year = moment.year + month // 12
    return moment.replace(year=year, month=month % 12 + 1, day=1)


async def _pull_windows(
    pull: Pull, since: datetime, until: datetime, unit: Window, *, cursor_key: str, done_before: int = 0,
    total_before: int = 0, started: datetime | None = None,
) -> bool:
    """Pull ``[since, until)`` window by window and save ``cursor[cursor_key]`` as they commit.

    ``sync.window_concurrency`` windows are in flight at once, so one window's first
    page and last writes overlap the next one's; the cursor only moves past windows
    that are written and every window before them too, so a crash never leaves a gap.

    Returns whether every window is done: once the slice is over (:meth:`Pull.slice_over`)
    no further window is started, those in flight finish, and False says the caller
    should give the worker back (the cursor then covers exactly the windows written).
    """
    ctx = pull.ctx
    done_until = _time(ctx.cursor.get(cursor_key)) or since
    every = windows(since, until, unit)
    remaining = windows(max(done_until, since), until, unit)
    puller = pull.time_entries()
    started = started or utcnow()
    finished: set[int] = set()
    committed = 0
    lock = asyncio.Lock()
    queue = iter(enumerate(remaining))
    stopped = False

    async def worker() -> None:
        nonlocal committed, stopped
        for index, (window_start, window_end) in queue:
            if stopped:
                return
            pull.progress.step(KIND, window=f"{window_start.date()}..{window_end.date()}")
            result = await puller.pull(window_start, window_end, run_started=started)
            async with lock:
                finished.add(index)
                moved = committed
                while committed in finished:
                    committed += 1
                ctx.report(source=result.source)
                if committed > moved:
                    done = len(every) - len(remaining) + committed
                    pull.progress.fraction(done_before + done, total_before + len(every))
                    await ctx.checkpoint({**ctx.cursor, cursor_key: remaining[committed - 1][1].isoformat()})
                    stopped = stopped or (committed < len(remaining) and pull.slice_over())

    tasks = [asyncio.create_task(worker()) for _ in range(max(1, pull.config.window_concurrency))]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return committed == len(remaining)


async def together(*steps: Coroutine[Any, Any, None]) -> None:
    """Run ``steps`` concurrently; the first failure cancels the others and is raised."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def bootstrap(runtime: Runtime, ctx: JobContext) -> None:
    await guarded(runtime, ctx, _bootstrap, written_by="bootstrap")


async def _bootstrap(pull: Pull) -> None:
    ctx, config = pull.ctx, pull.config
    cursor = dict(ctx.cursor)
    if "started" not in cursor:  # the first attempt fixes the windows every retry reuses
        cursor["started"] = pull.started.isoformat()
        await ctx.checkpoint(cursor)
    first_start = _time(cursor["started"]) or pull.started
    endpoints = reference_endpoints(pull.runtime.profile, config)
    done = set(cursor.get("done", []))
    until = first_start + timedelta(days=1)  # entries dated ahead of today are mirrored too
    since = floor_to(first_start - timedelta(days=config.bootstrap_days), "day")
    steps = 1 + len(endpoints)

    if "workspace" not in done:
        await pull_workspace(pull)  # first: it learns the plan, and with it the budget and windows
        done.add("workspace")
        await ctx.checkpoint({**ctx.cursor, "done": sorted(done)})
    unit = pull.window(config.backfill_window)
    n_windows = len(windows(since, until, unit)) if pull.syncs_time_entries else 0

    async def finished(endpoint: Any) -> None:
        done.add(endpoint.kind)
        pull.progress.fraction(len(done), steps + n_windows)
        await ctx.checkpoint({**ctx.cursor, "done": sorted(done)})

    complete = not pull.syncs_time_entries

    async def time_entries() -> None:
        nonlocal complete
        phase, started = time.monotonic(), utcnow()
        # Running timers first: a window listing that leaves them out (Clockify's report may)
        # must not tombstone rows written after the run began.
        await pull.time_entries().running()
        complete = await _pull_windows(pull, since, until, unit, cursor_key="te_done_until",
                                       done_before=steps, total_before=steps, started=started)
        ctx.report(time_entry_seconds=round(time.monotonic() - phase, 3))
        if not complete:
            return
        total = await pull.writer.count_live(KIND, pull.workspace_id)
        async with pull.ctx.transaction() as session:
            # Changes made while bootstrap ran are read by the next sync: it starts here.
            await state.kind_succeeded(session, pull.workspace_id, KIND, started=first_start, rows=pull.progress.rows,
                                       total=total, watermark=first_start)

    pull.progress.step(REFERENCE_STEP)
    todo = [e for e in endpoints if e.kind not in done]
    await pull_reference(pull, [e for e in todo if not e.per_project], on_done=finished)
    # Tasks cost a request per project: time entries share the rate budget with them meanwhile.
    await together(
        pull_reference(pull, [e for e in todo if e.per_project], on_done=finished),
        *([time_entries()] if pull.syncs_time_entries else []),
    )
    if not complete:  # the slice ended inside the time entries: the next claim goes on
        await give_back(pull.runtime, ctx)
    history = history_backfill(pull.installation.settings, first_start, since, unit)
    if not config.history_backfill and "since" not in (history or {}):
        history = None  # switched off for the deployment: only a cap the workspace set is fetched
    if pull.syncs_time_entries and history is not None and not ctx.cursor.get("backfill_queued"):
        async with pull.ctx.transaction() as session:
            await queue.enqueue(session, pull.workspace_id, JobKind.BACKFILL, history)
        await ctx.checkpoint({**ctx.cursor, "backfill_queued": True})
        pull.runtime.jobs_wakeup.set()
    async with pull.ctx.transaction() as session:
        await state.set_fields(session, pull.workspace_id, WORKSPACE_KIND,
                               next_run_at=next_run(pull.runtime.settings.sync, pull.installation, utcnow()))
    pull.progress.fraction(1, 1)


def history_backfill(settings: object, first_start: datetime, since: datetime, window: str) -> dict[str, Any] | None:
    """The params of the backfill bootstrap queues for the history before ``since``; None for none.

    ``history_months`` (0: all) caps the history, counted back from the install's month;
    while it is 0, an older ``backfill_months`` above 0 caps it at that many months before
    ``since`` (as it always did). Without a cap the backfill walks back to the first gap of
    ``sync.history_gap_months`` months without entries.
    """
    months = number(settings, HISTORY_MONTHS)
    legacy = number(settings, BACKFILL_MONTHS)
    if months > 0:
        start: datetime | None = months_before(floor_to(first_start, "day"), months)
    elif legacy > 0:
        start = months_before(since, legacy)
    else:
        start = None
    if start is None:
        return {"until": since.isoformat(), "history": HISTORY_ALL, "window": window}
    if start >= since:
        return None
    return {"since": start.isoformat(), "until": since.isoformat(), "window": window}


async def sync(runtime: Runtime, ctx: JobContext) -> None:
    if ctx.params.get("reason") == "schedule":
        async with runtime.sessions() as session:
            parked = await state.parked_until(session, ctx.workspace_id)
        if parked is not None:
            ctx.report(skipped=f"parked until {parked.parked_until}: {parked.parked_reason}")
            return
    await guarded(runtime, ctx, _sync, written_by="sync")


async def _sync(pull: Pull) -> None:
    config = pull.config
    minutes = config.free_plan_reference_minutes if pull.free_plan else config.reference_refresh_minutes
    async with pull.runtime.sessions() as session:
        rows = await state.states(session, pull.workspace_id)
    endpoints = due(reference_endpoints(pull.runtime.profile, config), rows, every=timedelta(minutes=minutes),
                    force=bool(pull.ctx.params.get("reference")))
    if endpoints:
        pull.progress.step(REFERENCE_STEP)
        await pull_reference(pull, endpoints)
    if pull.syncs_time_entries:
        await incremental(pull)
    pull.progress.fraction(1, 1)


async def incremental(pull: Pull) -> None:
    """Time entries changed since the watermark (minus the overlap), deletions, running timers."""
    config, ws = pull.config, pull.workspace_id
    run_started = utcnow()
    async with pull.runtime.sessions() as session:
        row = await state.load(session, ws, KIND)
        watermark = row.watermark
    low = (watermark or run_started) - timedelta(hours=config.overlap_hours)
    high = run_started + timedelta(days=1)
    puller = pull.time_entries()
    feed = config.change_feed
    deleted = 0
    pull.progress.step(KIND, window=f"{low.isoformat()}..")
    if feed:
        try:
            async for docs in puller.feed("deleted", low, run_started):
                ids = [str(d["id"]) for d in docs if isinstance(d.get("id"), str)]
                deleted += await pull.writer.tombstone(KIND, ws, ids, written_by=pull.written_by)
        except FeedUnavailable as exc:
            feed = False
            pull.progress.error(f"change feed unavailable: {exc}")
    # Running timers before the window: written after the run began, a listing that leaves
    # them out (Clockify's report may) cannot tombstone them.
    running = await puller.running()
    rows = tombstoned = 0
    for window_start, window_end in windows(low, high, pull.window("month")):
        result = await puller.pull(window_start, window_end, run_started=run_started)
        rows, tombstoned = rows + result.rows, tombstoned + result.tombstoned
    dirty = await puller.stale_running(running, before=low)
    if feed:
        try:
            # An entry created in the range is only in /created, even when it was edited since
            # (getUpdatedEntityInfo): both are read, or one created with an old date is missed.
            for which in ("created", "updated"):
                async for docs in puller.feed(which, low, run_started):
                    dirty.extend(s for s in map(entry_start, docs) if s is not None and s < low)
        except FeedUnavailable as exc:
            pull.progress.error(f"change feed unavailable: {exc}")
    for range_start, range_end in merge_days(dirty):
        result = await puller.pull(range_start, range_end, run_started=run_started)
        rows, tombstoned = rows + result.rows, tombstoned + result.tombstoned
    total = await pull.writer.count_live(KIND, ws)
    async with pull.ctx.transaction() as session:
        await state.kind_succeeded(session, ws, KIND, started=run_started, rows=rows, total=total,
                                   watermark=run_started)
    pull.progress.ctx.report(deleted=deleted + tombstoned, late_edit_days=len(merge_days(dirty)))
    log.info("sync.incremental_done", workspace_id=ws, rows=rows, deleted=deleted + tombstoned,
             dirty_ranges=len(merge_days(dirty)))


async def backfill(runtime: Runtime, ctx: JobContext) -> None:
    if not runtime.profile.sync_time_entries:
        ctx.report(skipped="this service does not mirror time entries")
        return
    await guarded(runtime, ctx, _backfill, written_by="backfill")


async def _backfill(pull: Pull) -> None:
    ctx = pull.ctx
    if ctx.params.get("history") == HISTORY_ALL and "since" not in ctx.params:
        await _walk_back(pull)
        return
    since = _time(ctx.params.get("since"))
    if since is None or since < EARLIEST:
        raise BadParams(f"backfill needs params.since, not before {EARLIEST.date().isoformat()}")
    if "until" not in ctx.cursor:
        until_param = _time(ctx.params.get("until"))
        await ctx.checkpoint({**ctx.cursor, "until": (until_param or pull.started + timedelta(days=1)).isoformat()})
    until = _time(ctx.cursor["until"]) or pull.started
    unit = ctx.params.get("window") or pull.window(pull.config.backfill_window)
    if unit not in ("day", "week", "month", "year"):
        raise BadParams(f"unknown window {unit!r}")
    if not await _pull_windows(pull, since, until, unit, cursor_key="done_until"):
        await give_back(pull.runtime, ctx)
    total = await pull.writer.count_live(KIND, pull.workspace_id)
    async with pull.ctx.transaction() as session:
        await state.set_fields(session, pull.workspace_id, KIND, rows_total=total)


async def _walk_back(pull: Pull) -> None:
    """Mirror the whole history before ``params.until``, newest window first.

    Window by window (``params.window``) back from ``until``; after an empty window the
    next one spans ``sync.history_gap_months`` at once, and when that is empty too the
    history is complete (a workspace silent for that long before has nothing older worth
    a request per month). ``cursor.reached`` (everything from there to ``until`` is
    written) and ``cursor.last_empty`` make it resumable; progress shows ``history_reached``.
    """
    ctx, config = pull.ctx, pull.config
    until = _time(ctx.params.get("until"))
    if until is None or until < EARLIEST:
        raise BadParams(f"a history backfill needs params.until, not before {EARLIEST.date().isoformat()}")
    unit = ctx.params.get("window") or pull.window(config.backfill_window)
    if unit not in ("day", "week", "month", "year"):
        raise BadParams(f"unknown window {unit!r}")
    reached = _time(ctx.cursor.get("reached")) or until
    last_empty = bool(ctx.cursor.get("last_empty"))
    puller = pull.time_entries()
    run_started = utcnow()
    ctx.report(history_reached=reached.date().isoformat())
    while reached > EARLIEST:
        if last_empty:
            start = months_before(reached, config.history_gap_months)
        else:
            start = floor_to(reached - timedelta(microseconds=1), unit)
        start = max(start, EARLIEST)
        pull.progress.step(KIND, window=f"{start.date()}..{reached.date()}")
        result = await puller.pull(start, reached, run_started=run_started)
        ctx.report(source=result.source)
        gap = last_empty and result.rows == 0
        reached, last_empty = start, result.rows == 0
        ctx.report(history_reached=reached.date().isoformat())
        await ctx.checkpoint({**ctx.cursor, "reached": reached.isoformat(), "last_empty": last_empty})
        if gap:
            break
        if pull.slice_over():
            await give_back(pull.runtime, ctx)
    ctx.report(history_complete=True)
    total = await pull.writer.count_live(KIND, pull.workspace_id)
    async with pull.ctx.transaction() as session:
        await state.set_fields(session, pull.workspace_id, KIND, rows_total=total)


async def reconcile(runtime: Runtime, ctx: JobContext) -> None:
    if not runtime.profile.sync_time_entries:
        ctx.report(skipped="this service does not mirror time entries")
        return
    await guarded(runtime, ctx, _reconcile, written_by="reconcile")


async def _reconcile(pull: Pull) -> None:
    """Re-list one user's entries around ``start`` (a split leaves two entries, one body)."""
    user_id, start = pull.ctx.params.get("user_id"), _time(pull.ctx.params.get("start"))
    if not isinstance(user_id, str) or start is None:
        raise BadParams("reconcile needs params.user_id and params.start")
    low = floor_to(start, "day")
    high = min(start + timedelta(days=pull.config.reconcile_days), utcnow() + timedelta(days=1))
    high = max(high, low + timedelta(days=1))
    pull.progress.step(KIND, window=f"{low.date()}..{high.date()}", user_id=user_id)
    result = await pull.time_entries().pull(low, high, user_ids=[user_id], run_started=utcnow())
    pull.progress.ctx.report(deleted=result.tombstoned)
