"""The job loop: claim a job, run its handler with a heartbeat, record the outcome.

Handlers are registered per kind on the runtime (``runtime.job_handlers``). A handler
reports progress through its :class:`JobContext` and saves resumable positions with
:meth:`JobContext.checkpoint`; it raises :class:`JobLost` out of a checkpoint when the
job was cancelled or taken over, and any other exception is retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, NoReturn

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core.db.failures import describe_failure
from clockify_core.db.queue import retry_delay
from clockify_core.jobs import queue
from clockify_core.jobs.models import JobKind, JobStatus
from clockify_core.runtime import Runtime

log = structlog.get_logger(__name__)

JobHandler = Callable[[Runtime, "JobContext"], Awaitable[None]]


class JobLost(Exception):
    """The job was cancelled or another worker took it over; stop without recording anything."""


class JobContext:
    def __init__(self, runtime: Runtime, job: queue.ClaimedJob, *, lease_seconds: float) -> None:
        self.runtime = runtime
        self.job = job
        self.progress: dict[str, Any] = dict(job.progress)
        self.cursor: dict[str, Any] = dict(job.cursor)
        self.lease_seconds = lease_seconds
        self.lost = False
        self.started = time.monotonic()
        # Saves commit in the order they were asked for: concurrent steps of one job each
        # checkpoint, and the row must end with the newest cursor, not whichever commit won.
        self._saving = asyncio.Lock()

    @property
    def workspace_id(self) -> str:
        return self.job.workspace_id

    @property
    def params(self) -> Mapping[str, Any]:
        return self.job.params

    def report(self, **values: Any) -> None:
        """Update progress in memory; the next heartbeat or checkpoint stores it."""
        self.progress.update(values)

    async def checkpoint(self, cursor: Mapping[str, Any] | None = None) -> None:
        """Store progress and (optionally) a new resume cursor now."""
        if cursor is not None:
            self.cursor = dict(cursor)
        await self._save(cursor=self.cursor if cursor is not None else None)

    async def ensure_live(self, session: AsyncSession | None = None) -> None:
        """Raise :class:`JobLost` unless this worker still runs the job.

        An uninstall cancels the workspace's jobs; a handler asks this before each call to
        Clockify (the client's ``before_send`` hook, every attempt) and, with the ``session`` of a write transaction, as
        the first statement of every transaction that writes workspace rows
        (:meth:`transaction`), so nothing is written once the uninstall has committed.
        """
        if self.lost:
            raise JobLost(f"job {self.job.id} was cancelled or taken over")
        worker = self.runtime.instance_id
        if session is not None:
            live = await queue.holds(session, self.job.id, worker_id=worker, lock=True)
        else:
            async with self.runtime.sessions() as fresh:
                live = await queue.holds(fresh, self.job.id, worker_id=worker)
        if not live:
            self.lost = True
            raise JobLost(f"job {self.job.id} was cancelled or taken over")

    async def defer(self, seconds: float, reason: str) -> NoReturn:
        """Give the worker back until a rate budget has refilled (``seconds``), instead of
        waiting in the loop while other workspaces' jobs are due. The cursor is kept and no
        attempt is spent (:func:`~clockify_core.jobs.queue.defer`)."""
        self.report(deferred=reason[:300])
        await self.checkpoint()
        async with self.runtime.sessions.begin() as session:
            await queue.defer(session, self.job.id, worker_id=self.runtime.instance_id, reason=reason, delay=seconds)
        log.info("job.deferred", job_id=self.job.id, kind=self.job.kind, workspace_id=self.workspace_id,
                 seconds=round(seconds, 1))
        raise JobLost(f"deferred for {seconds:.0f} s until the rate budget refills")

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction that only begins while the job is live (see :meth:`ensure_live`)."""
        async with self.runtime.sessions.begin() as session:
            await self.ensure_live(session)
            yield session

    async def _save(self, cursor: Mapping[str, Any] | None = None) -> None:
        async with self._saving, self.runtime.sessions.begin() as session:
            ok = await queue.heartbeat(
                session, self.job.id, worker_id=self.runtime.instance_id, lease_seconds=self.lease_seconds,
                progress=self.progress, cursor=cursor,
            )
        if not ok:
            self.lost = True
            raise JobLost(f"job {self.job.id} was cancelled or taken over")


async def _heartbeat(ctx: JobContext, stop: asyncio.Event) -> None:
    interval = max(1.0, ctx.lease_seconds / 3)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
        if stop.is_set():
            return
        try:
            await ctx._save()
        except JobLost:
            return
        except Exception:  # a failed heartbeat is retried at the next interval
            log.warning("job.heartbeat_failed", job_id=ctx.job.id, exc_info=True)


async def run_one(runtime: Runtime, *, kinds: tuple[str, ...] | None = None) -> bool:
    """Claim and run one job; False when nothing was due."""
    handlers = runtime.job_handlers
    lease = runtime.settings.worker.lease_seconds
    async with runtime.sessions.begin() as session:
        job = await queue.claim(
            session, worker_id=runtime.instance_id, kinds=kinds or tuple(handlers), lease_seconds=lease,
            workspace_concurrency=runtime.settings.worker.workspace_concurrency,
        )
    if job is None:
        return False
    ctx = JobContext(runtime, job, lease_seconds=lease)
    bound = log.bind(job_id=job.id, kind=job.kind, workspace_id=job.workspace_id)
    bound.info("job.started", attempt=job.attempts)
    beat_stop = asyncio.Event()
    beat = asyncio.create_task(_heartbeat(ctx, beat_stop))
    try:
        await handlers[job.kind](runtime, ctx)
    except JobLost as exc:
        bound.info("job.lost", reason=str(exc))  # cancelled, taken over, deferred or a slice given back
        return True
    except Exception as exc:
        await _record_failure(runtime, ctx, exc)
        return True
    finally:
        beat_stop.set()
        await beat
    ctx.report(elapsed_seconds=round(time.monotonic() - ctx.started, 3))
    async with runtime.sessions.begin() as session:
        await queue.complete(session, job.id, worker_id=runtime.instance_id, progress=ctx.progress)
    runtime.metrics.jobs.labels(job.kind, "done").inc()
    if job.kind == JobKind.BOOTSTRAP:
        runtime.metrics.bootstrap_jobs.labels("done").inc()
    bound.info("job.done", **{k: v for k, v in ctx.progress.items() if isinstance(v, int | float | str)})
    return True


async def _record_failure(runtime: Runtime, ctx: JobContext, exc: Exception) -> None:
    job, worker = ctx.job, runtime.settings.worker
    error = describe_failure(exc, limit=2000)
    ctx.report(last_error=error[:500])
    delay = retry_delay(job.attempts, max_attempts=worker.max_attempts, base=worker.backoff_base, cap=worker.backoff_max)
    async with runtime.sessions.begin() as session:
        if delay is None:
            await queue.complete(session, job.id, worker_id=runtime.instance_id, status=JobStatus.FAILED,
                                 error=error[:2000], progress=ctx.progress)
            runtime.metrics.jobs.labels(job.kind, "failed").inc()
            if job.kind == JobKind.BOOTSTRAP:
                runtime.metrics.bootstrap_jobs.labels("failed").inc()
            log.error("job.failed", job_id=job.id, kind=job.kind, error=error)
        else:
            await queue.retry_later(session, job.id, worker_id=runtime.instance_id, error=error, delay=delay)
            log.warning("job.retry", job_id=job.id, kind=job.kind, error=error, delay=round(delay, 1))


async def job_loop(runtime: Runtime, stop: asyncio.Event) -> None:
    poll = runtime.settings.worker.poll_interval
    while not stop.is_set():
        try:
            ran = await run_one(runtime)
        except Exception:  # database blips: log, pause, carry on
            log.warning("job.loop_error", exc_info=True)
            ran = False
        if not ran:
            await runtime.idle(runtime.jobs_wakeup, poll)
