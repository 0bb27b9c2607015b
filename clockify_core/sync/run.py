"""What every pull job shares: the installation's API client, the writer, failure accounting.

:func:`guarded` wraps a job body. It loads the installation (an inactive or removed
one ends the job quietly), builds the client (whose rate budget follows the
installation's plan, :func:`~clockify_core.installations.repository.installation_api`;
a bootstrap's first request learns the plan and switches it, :meth:`Pull.spend_on`), and
afterwards records the outcome on the workspace's ``sync_state`` row:

* success clears failures and parking;
* a Clockify-side failure (:class:`~clockify_core.errors.UpstreamError`: an API error
  after every retry, a refused token, a bad base URL) counts; at
  ``sync.park_after_failures`` in a row the workspace is parked (``parked_until``,
  ``parked_reason``) and the job ends FAILED instead of retrying, so one broken
  workspace never keeps workers busy for the others;
* anything else (the database is down, a bug of ours) says nothing about the workspace:
  the job is retried like any job and never parks it; bad job parameters
  (:class:`BadParams`) fail the job at once;
* a rate-limit wait longer than the pull's bound (:func:`max_rate_wait`) is not a failure:
  the job goes back to the queue until the budget has refilled (:meth:`Pull.defer_for`) and
  resumes from its cursor.

On the Free plan the bound is :data:`FREE_PLAN_MAX_WAIT` seconds, not minutes: a token of
30 an hour is 133 s away, and a job loop sleeping for each would hold a worker for hours
while other workspaces wait (docs/scaling.md, "Fairness"). Such a job defers until a few
requests' worth has refilled (:data:`RESUME_REQUESTS`), and every step checkpoints what it has written
(:meth:`Pull.resumed`, :meth:`Pull.keep`), so each claim goes on where the last stopped:
a job needing more requests than the bucket holds completes over several claims.

A long pull (bootstrap, backfill) also goes back to the queue on its own once it has run
``sync.slice_seconds`` or written ``sync.slice_rows`` rows (:meth:`Pull.slice_over`, :func:`give_back`): due again at once,
behind every job due before it, so one big workspace never holds a worker for long.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from clockify_core.catalog import FREE_PLAN
from clockify_core.client import WorkspaceApi
from clockify_core.config import SyncConfig
from clockify_core.db.base import utcnow
from clockify_core.db.dialect import is_postgres
from clockify_core.db.failures import describe_failure
from clockify_core.errors import RateLimited, UpstreamError
from clockify_core.installations.models import Installation, InstallationStatus
from clockify_core.installations.repository import get_installation, installation_api, plan_limit
from clockify_core.jobs import queue
from clockify_core.jobs.models import JobKind, JobStatus
from clockify_core.jobs.worker import JobContext, JobLost
from clockify_core.mirror.mapping import parse_time
from clockify_core.runtime import Runtime
from clockify_core.sync import state
from clockify_core.sync.bulk import BulkWriter
from clockify_core.sync.fetch import Fetcher
from clockify_core.sync.progress import Progress
from clockify_core.sync.timeentries import Coverage, RangeResult, TimeEntryPuller, Window

log = structlog.get_logger(__name__)


class BadParams(ValueError):
    """The job's parameters cannot be run (retrying would fail the same way)."""

# Jobs that load mostly new rows, so their writer starts with direct COPY (sync.bulk).
LOADERS = frozenset({"bootstrap", "backfill"})
# The longest a Free-plan pull waits in its job loop for a token; a longer wait defers the job.
FREE_PLAN_MAX_WAIT = 5.0
# Tokens a deferred pull waits for before it is claimed again: a Free bucket's whole burst
# (3 of 30 an hour), so one claim buys several requests; a bigger bucket (a higher
# RATE_LIMIT__FREE_PLAN_PER_HOUR) is not waited for to the brim, which would always take a
# tenth of an hour however little is left to read.
RESUME_REQUESTS = 3
# The job cursor's key for steps an earlier claim began and did not finish (Pull.keep).
PARTIAL = "partial"


def max_rate_wait(config: SyncConfig, plan: str | None) -> float:
    """How long a pull on ``plan``'s budget may wait for a token before it defers instead."""
    return min(FREE_PLAN_MAX_WAIT, config.max_rate_wait_seconds) if plan == FREE_PLAN else config.max_rate_wait_seconds


def instant(value: Any) -> datetime | None:
    """A cursor's ISO time, or None when absent or unreadable."""
    try:
        return parse_time(value) if isinstance(value, str) else None
    except OverflowError:  # e.g. year 1 with a positive offset: no such instant in UTC
        return None


@dataclass
class Pull:
    runtime: Runtime
    ctx: JobContext
    installation: Installation
    api: WorkspaceApi
    fetcher: Fetcher
    writer: BulkWriter
    progress: Progress
    written_by: str
    started: datetime

    @property
    def config(self) -> SyncConfig:
        return self.runtime.settings.sync

    @property
    def workspace_id(self) -> str:
        return self.installation.workspace_id

    @property
    def free_plan(self) -> bool:
        return self.installation.subscription_plan == FREE_PLAN

    def spend_on(self, plan: str | None) -> None:
        """Send this pull's further requests on ``plan``'s rate budget (the one
        :func:`~clockify_core.installations.repository.installation_api` gives that plan)."""
        self.api.rate_limit = plan_limit(self.runtime.settings.rate_limit, plan)
        self.fetcher.max_wait = max_rate_wait(self.config, plan)
        # One request at a time where requests are what binds: a spent budget then never stops
        # a pull with a request in flight whose answer would be dropped.
        self.fetcher.slots = asyncio.Semaphore(1 if plan == FREE_PLAN else self.config.concurrency)

    def defer_for(self, wait: float) -> float:
        """Seconds to give the worker back when a token is ``wait`` seconds away: until
        ``RESUME_REQUESTS`` tokens are back (a Free bucket's whole 3), so the next claim has
        several requests to go on with, yet a larger bucket is not waited for to the brim."""
        return (self.api.rate_limit or self.runtime.limiter.default).ready_after(wait, RESUME_REQUESTS)

    def resumed(self, step: str) -> dict[str, Any]:
        """What an earlier claim saved of ``step`` (:meth:`keep`); empty when it starts afresh."""
        return dict(self.ctx.cursor.get(PARTIAL, {}).get(step) or {})

    async def keep(self, step: str, position: Mapping[str, Any] | None) -> None:
        """Save how far ``step`` got (None: it is done), for the claim that resumes the job."""
        partial = {k: v for k, v in self.ctx.cursor.get(PARTIAL, {}).items() if k != step}
        if position is None and len(partial) == len(self.ctx.cursor.get(PARTIAL, {})):
            return  # nothing was kept: no checkpoint needed
        if position is not None:
            partial[step] = dict(position)
        await self.ctx.checkpoint({**self.ctx.cursor, PARTIAL: partial})

    async def range(
        self, step: str, puller: TimeEntryPuller, start: datetime, end: datetime, *, run_started: datetime,
        user_ids: list[str] | None = None,
    ) -> RangeResult:
        """``puller.pull`` of ``[start, end)`` as the resumable ``step``: stopped by the budget, it
        keeps how far the report got, and the next claim lists from there with the first one's
        ``run_started`` (so the rows already written are not tombstoned)."""
        saved = self.resumed(step)
        run_started = instant(saved.get("since")) or run_started
        coverage = Coverage(instant(saved.get("from")) or start)
        try:
            result = await puller.pull(start, end, user_ids=user_ids, run_started=run_started, coverage=coverage)
        except RateLimited:
            if coverage.until > start:
                await self.keep(step, {"from": coverage.until.isoformat(), "since": run_started.isoformat()})
            raise
        await self.keep(step, None)
        return result

    def window(self, unit: Window) -> Window:
        """``unit``, or a year on the Free plan: the widest report Clockify serves it
        (docs/clockify.md, "Reports"), so ten years of history cost ten requests, not 120."""
        return "year" if self.free_plan else unit

    @property
    def syncs_time_entries(self) -> bool:
        profile = self.runtime.profile
        return profile.sync_time_entries and profile.allows_scope("TIME_ENTRY_READ")

    def slice_over(self) -> bool:
        """Whether this claim has had its slice (time to :func:`give_back`): ``sync.slice_seconds``
        of work, or ``sync.slice_rows`` rows written when that is set."""
        config = self.config
        if config.slice_rows and self.progress.rows - self.progress.started_rows >= config.slice_rows:
            return True
        return time.monotonic() - self.ctx.started >= config.slice_seconds

    def time_entries(self) -> TimeEntryPuller:
        report = self.runtime.profile.allows_scope("REPORTS_READ") and bool(self.installation.reports_url)
        return TimeEntryPuller(
            self.fetcher, self.writer, self.config, self.progress, written_by=self.written_by, report=report,
            sessions=self.runtime.sessions, free_plan=self.free_plan,
        )


def describe(exc: BaseException) -> str:
    return describe_failure(exc, limit=2000)


async def guarded(
    runtime: Runtime, ctx: JobContext, body: Callable[[Pull], Awaitable[None]], *, written_by: str
) -> None:
    started = utcnow()
    async with runtime.sessions() as session:
        installation = await get_installation(session, ctx.workspace_id)
    if installation is None or installation.status != InstallationStatus.ACTIVE or not installation.auth_token_encrypted:
        ctx.report(skipped="the add-on is not active on this workspace")
        return
    # Every call to Clockify and every write checks first that the job still runs: an
    # uninstall cancels it, and then nothing is called or written (docs/ARCHITECTURE.md).
    api = installation_api(runtime, installation, before_send=ctx.ensure_live)
    progress = Progress(ctx, runtime.metrics)
    pull = Pull(
        runtime=runtime, ctx=ctx, installation=installation, api=api,
        fetcher=Fetcher(api, runtime.settings.sync, runtime.settings.http, progress),
        writer=BulkWriter(runtime.sessions, postgres=is_postgres(runtime.engine), metrics=runtime.metrics,
                          direct=runtime.settings.sync.direct_copy and written_by in LOADERS, guard=ctx.ensure_live,
                          progress=progress),
        progress=progress, written_by=written_by, started=started,
    )
    pull.spend_on(installation.subscription_plan)  # the plan's budget, wait bound and concurrency
    try:
        await body(pull)
    except (JobLost, asyncio.CancelledError):
        raise
    except RateLimited as exc:
        await ctx.defer(pull.defer_for(float(exc.extensions.get("retry_after", 60))), describe(exc))
    except BadParams as exc:
        progress.error(describe(exc))
        await fail(runtime, ctx, describe(exc))
    except UpstreamError as exc:
        error = describe(exc)
        progress.error(error)
        async with ctx.transaction() as session:
            parked = await state.workspace_failed(session, ctx.workspace_id, error, runtime.settings.sync)
        if parked is None:
            raise
        await fail(runtime, ctx, f"parked until {parked.isoformat()}: {error}", parked=True)
    except Exception as exc:
        progress.error(describe(exc))
        raise
    else:
        async with ctx.transaction() as session:
            await state.workspace_succeeded(session, ctx.workspace_id, started=started)
    finally:
        progress.close()


async def give_back(runtime: Runtime, ctx: JobContext) -> None:
    """End this slice: the job is due again now, behind the jobs due before it, cursor kept."""
    ctx.report(slices=int(ctx.progress.get("slices", 0)) + 1)
    await ctx.checkpoint()
    async with runtime.sessions.begin() as session:
        mine = await queue.requeue(session, ctx.job.id, worker_id=runtime.instance_id)
    if mine:
        runtime.jobs_wakeup.set()
    raise JobLost("slice done: back to the queue")


async def fail(runtime: Runtime, ctx: JobContext, error: str, *, parked: bool = False) -> None:
    """End the job FAILED now (no retry): its workspace was just parked, or its parameters are bad."""
    async with runtime.sessions.begin() as session:
        await queue.complete(session, ctx.job.id, worker_id=runtime.instance_id, status=JobStatus.FAILED,
                             error=error[:2000], progress=ctx.progress)
    runtime.metrics.jobs.labels(ctx.job.kind, "failed").inc()
    if ctx.job.kind == JobKind.BOOTSTRAP:
        runtime.metrics.bootstrap_jobs.labels("failed").inc()
    log.error("sync.parked" if parked else "sync.bad_params", job_id=ctx.job.id, workspace_id=ctx.workspace_id,
              error=error)
    raise JobLost("failed and parked" if parked else "failed: bad parameters")

