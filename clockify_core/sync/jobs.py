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

Every step that costs requests is resumable on its own, down to the report page
(:meth:`~clockify_core.sync.run.Pull.range`), so a job deferred for its rate budget (a Free
plan's hourly quota) goes on after what it wrote: an incremental sync keeps its start
(``partial.time_entry.started``), the steps it finished and what they found, and moves the
watermark only once every step is done.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from typing import Any

import structlog

from clockify_core.db.base import utcnow
from clockify_core.installations.repository import get_installation
from clockify_core.installations.settings import BACKFILL_MONTHS, HISTORY_MONTHS, number
from clockify_core.jobs import queue
from clockify_core.jobs.models import JobKind
from clockify_core.jobs.worker import JobContext
from clockify_core.runtime import Runtime
from clockify_core.sync import state
from clockify_core.sync.endpoints import reference_endpoints
from clockify_core.sync.models import WORKSPACE_KIND
from clockify_core.sync.reference import due, pull_reference, pull_workspace
from clockify_core.sync.run import BadParams, Pull, give_back, guarded, instant
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
from clockify_core.sync.together import together

# A backfill with this parameter walks back from ``until`` through the whole history.
HISTORY_ALL = "all"

log = structlog.get_logger(__name__)

REFERENCE_STEP = "reference"


def months_before(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 - months
    year = moment.year + month // 12
    return moment.replace(year=year, month=month % 12 + 1, day=1)


# Running timers' ids a bootstrap keeps in its cursor for later claims (sync.bulk's "written
# ahead"); one beyond it only costs its batch a merge instead of a direct COPY.
AHEAD_KEPT = 1000


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
    done_until = instant(ctx.cursor.get(cursor_key)) or since
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
            result = await pull.range(f"{cursor_key}:{window_start.isoformat()}", puller, window_start, window_end,
                                      run_started=started)
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

    # On the Free plan requests bind, not latency: one window at a time, so the cursor moves
    # past every window read before the budget ran out.
    await together(*(worker() for _ in range(1 if pull.free_plan else max(1, pull.config.window_concurrency))))
    return committed == len(remaining)


async def bootstrap(runtime: Runtime, ctx: JobContext) -> None:
    await guarded(runtime, ctx, _bootstrap, written_by="bootstrap")


async def _bootstrap(pull: Pull) -> None:
    ctx, config = pull.ctx, pull.config
    cursor = dict(ctx.cursor)
    if "started" not in cursor:  # the first attempt fixes the windows every retry reuses
        cursor["started"] = pull.started.isoformat()
        await ctx.checkpoint(cursor)
    first_start = instant(cursor["started"]) or pull.started
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
        phase = time.monotonic()
        # Running timers first: a window listing that leaves them out (Clockify's report may)
        # must not tombstone rows written after the run began. Read once; later claims judge
        # from the same start.
        started = instant(ctx.cursor.get("te_started"))
        if started is None:
            started = utcnow()
            await pull.time_entries().running()
            # The timers' ids the writer now knows as written ahead (sync.bulk), for the claim
            # that reaches their window.
            ahead = sorted(pull.writer.ahead.get(KIND, ()))[:AHEAD_KEPT]
            await ctx.checkpoint({**ctx.cursor, "te_started": started.isoformat(), "te_ahead": ahead})
        else:
            pull.writer.written_ahead(KIND, ctx.cursor.get("te_ahead") or [])
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
        # Planned from the settings as they are now: an admin may have changed the interval
        # while the bootstrap ran.
        installation = await get_installation(session, pull.workspace_id) or pull.installation
        await state.set_fields(session, pull.workspace_id, WORKSPACE_KIND,
                               next_run_at=next_run(pull.runtime.settings.sync, installation, utcnow()))
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
    ctx, config = pull.ctx, pull.config
    minutes = config.free_plan_reference_minutes if pull.free_plan else config.reference_refresh_minutes
    async with pull.runtime.sessions() as session:
        rows = await state.states(session, pull.workspace_id)
    done = set(ctx.cursor.get("done", []))  # listed by an earlier claim of this job (even when forced)
    endpoints = due(reference_endpoints(pull.runtime.profile, config), rows, every=timedelta(minutes=minutes),
                    force=bool(ctx.params.get("reference")))

    async def finished(endpoint: Any) -> None:
        done.add(endpoint.kind)
        await ctx.checkpoint({**ctx.cursor, "done": sorted(done)})

    endpoints = [e for e in endpoints if e.kind not in done]
    if endpoints:
        pull.progress.step(REFERENCE_STEP)
        await pull_reference(pull, endpoints, on_done=finished)
    if pull.syncs_time_entries:
        await incremental(pull)
    pull.progress.fraction(1, 1)


async def incremental(pull: Pull) -> None:
    """Time entries changed since the watermark (minus the overlap), deletions, running timers.

    Resumable step by step (``partial.time_entry`` in the cursor): the run's start, the steps
    done, the running timers and the days marked for re-reading survive a deferral, and a
    window stopped mid-way goes on from its last written page (:meth:`Pull.range`).
    """
    config, ws = pull.config, pull.workspace_id
    run = pull.resumed(KIND)
    run_started = instant(run.get("started")) or utcnow()
    run["started"] = run_started.isoformat()
    steps: set[str] = set(run.get("done", []))
    async with pull.runtime.sessions() as session:
        row = await state.load(session, ws, KIND)
        watermark = row.watermark
    low = (watermark or run_started) - timedelta(hours=config.overlap_hours)
    high = run_started + timedelta(days=1)
    puller = pull.time_entries()

    async def done(step: str, **found: Any) -> None:
        steps.add(step)
        run.update(found, done=sorted(steps))
        await pull.keep(KIND, run)

    def feed_off(exc: FeedUnavailable) -> None:
        run["no_feed"] = True
        pull.progress.error(f"change feed unavailable: {exc}")

    # The change feed is read a query range at a time (``feed_window_days``), each its own step.
    step_days = timedelta(days=config.feed_window_days)
    feed_ranges = [(at, min(at + step_days, run_started)) for at in _steps(low, run_started, step_days)]

    def feed_on(step: str) -> bool:
        return config.change_feed and not run.get("no_feed") and step not in steps

    pull.progress.step(KIND, window=f"{low.isoformat()}..")
    for since, until in feed_ranges:
        if feed_on(step := f"deleted:{since.isoformat()}"):
            deleted = 0
            try:
                async for docs in puller.feed("deleted", since, until):
                    ids = [str(d["id"]) for d in docs if isinstance(d.get("id"), str)]
                    deleted += await pull.writer.tombstone(KIND, ws, ids, written_by=pull.written_by)
            except FeedUnavailable as exc:
                feed_off(exc)
            await done(step, deleted=run.get("deleted", 0) + deleted)
    # Running timers before the window: written after the run began, a listing that leaves
    # them out (Clockify's report may) cannot tombstone them.
    if "running" not in steps:
        timers = await puller.running()
        await done("running", running=[str(e.get("id")) for e in timers])
    for window_start, window_end in windows(low, high, pull.window("month")):
        step = f"window:{window_start.isoformat()}"
        if step not in steps:
            result = await pull.range(f"{KIND}:{step}", puller, window_start, window_end, run_started=run_started)
            await done(step, rows=run.get("rows", 0) + result.rows, gone=run.get("gone", 0) + result.tombstoned)
    if "stale" not in steps:
        dirty = await puller.stale_running([{"id": i} for i in run.get("running", [])], before=low)
        await done("stale", dirty=[d.isoformat() for d in dirty])
    # An entry created in the range is only in /created, even when it was edited since
    # (getUpdatedEntityInfo): both are read, or one created with an old date is missed.
    for which in ("created", "updated"):
        for since, until in feed_ranges:
            if feed_on(step := f"{which}:{since.isoformat()}"):
                found: list[str] = []
                try:
                    async for docs in puller.feed(which, since, until):
                        found.extend(s.isoformat() for s in map(entry_start, docs) if s is not None and s < low)
                except FeedUnavailable as exc:
                    feed_off(exc)
                await done(step, dirty=[*run.get("dirty", []), *found])
    ranges = merge_days(d for d in map(instant, run.get("dirty", [])) if d is not None)
    for range_start, range_end in ranges:
        step = f"days:{range_start.isoformat()}"
        if step not in steps:
            result = await pull.range(f"{KIND}:{step}", puller, range_start, range_end, run_started=run_started)
            await done(step, rows=run.get("rows", 0) + result.rows, gone=run.get("gone", 0) + result.tombstoned)
    rows, deleted = int(run.get("rows", 0)), int(run.get("deleted", 0)) + int(run.get("gone", 0))
    total = await pull.writer.count_live(KIND, ws)
    async with pull.ctx.transaction() as session:
        await state.kind_succeeded(session, ws, KIND, started=run_started, rows=rows, total=total,
                                   watermark=run_started)
    await pull.keep(KIND, None)
    pull.progress.ctx.report(deleted=deleted, late_edit_days=len(ranges))
    log.info("sync.incremental_done", workspace_id=ws, rows=rows, deleted=deleted, dirty_ranges=len(ranges))


def _steps(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """``start``, ``start + step``, ... before ``end`` (at least ``start``, as the feed reads an empty range once)."""
    out = [start]
    while out[-1] + step < end:
        out.append(out[-1] + step)
    return out


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
    since = instant(ctx.params.get("since"))
    if since is None or since < EARLIEST:
        raise BadParams(f"backfill needs params.since, not before {EARLIEST.date().isoformat()}")
    if "until" not in ctx.cursor:
        until_param = instant(ctx.params.get("until"))
        await ctx.checkpoint({**ctx.cursor, "until": (until_param or pull.started + timedelta(days=1)).isoformat()})
    until = instant(ctx.cursor["until"]) or pull.started
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
    until = instant(ctx.params.get("until"))
    if until is None or until < EARLIEST:
        raise BadParams(f"a history backfill needs params.until, not before {EARLIEST.date().isoformat()}")
    unit = ctx.params.get("window") or pull.window(config.backfill_window)
    if unit not in ("day", "week", "month", "year"):
        raise BadParams(f"unknown window {unit!r}")
    reached = instant(ctx.cursor.get("reached")) or until
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
        result = await pull.range(f"history:{start.isoformat()}", puller, start, reached, run_started=run_started)
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
    user_id, start = pull.ctx.params.get("user_id"), instant(pull.ctx.params.get("start"))
    if not isinstance(user_id, str) or start is None:
        raise BadParams("reconcile needs params.user_id and params.start")
    low = floor_to(start, "day")
    high = min(start + timedelta(days=pull.config.reconcile_days), utcnow() + timedelta(days=1))
    high = max(high, low + timedelta(days=1))
    pull.progress.step(KIND, window=f"{low.date()}..{high.date()}", user_id=user_id)
    result = await pull.range("reconcile", pull.time_entries(), low, high, user_ids=[user_id], run_started=utcnow())
    pull.progress.ctx.report(deleted=result.tombstoned)
