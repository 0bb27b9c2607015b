"""The inbox loop: claim due events, prepare (network), apply (one transaction), finish.

Handlers take part in two steps so no transaction is held open across network calls:
``prepare`` runs outside any transaction (e.g. re-fetch the entity from Clockify),
``apply`` runs inside the one transaction that also marks the event DONE. If the
lease was lost meanwhile, that transaction rolls back: each event is applied once.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from clockify_core.capability import EventHandler
from clockify_core.db.base import utcnow
from clockify_core.db.failures import describe_failure
from clockify_core.runtime import Runtime
from clockify_core.webhooks import inbox
from clockify_core.webhooks.inbox import ClaimedEvent

log = structlog.get_logger(__name__)
DEPTH_REFRESH_SECONDS = 5.0


class LeaseLost(Exception):
    pass


async def process_event(runtime: Runtime, event: ClaimedEvent) -> str:
    """Apply one claimed event; returns its new status."""
    handlers: list[EventHandler] = runtime.event_handlers
    worker = runtime.settings.worker
    try:
        prepared = [await handler.prepare(runtime, event) for handler in handlers]
        async with runtime.sessions.begin() as session:
            for handler, context in zip(handlers, prepared, strict=True):
                await handler.apply(runtime, session, event, context)
            if not await inbox.finish(session, event.id, worker_id=runtime.instance_id):
                raise LeaseLost
    except LeaseLost:
        log.warning("inbox.lease_lost", event_id=event.id)
        return "LOST"
    except Exception as exc:
        error = describe_failure(exc)
        async with runtime.sessions.begin() as session:
            status = await inbox.fail(
                session, event.id, worker_id=runtime.instance_id, attempts=event.attempts, error=error,
                max_attempts=worker.max_attempts, base=worker.backoff_base, cap=worker.backoff_max,
            )
        if status == "DEAD":
            runtime.metrics.inbox_dead_letters.labels(event.event_type).inc()
            log.error("inbox.dead_letter", event_id=event.id, event_type=event.event_type, error=error)
        else:
            log.warning("inbox.retry", event_id=event.id, event_type=event.event_type, attempt=event.attempts, error=error)
        return status
    runtime.metrics.inbox_processing.observe(max(0.0, (utcnow() - event.received_at).total_seconds()))
    return "DONE"


async def process_batch(runtime: Runtime, *, limit: int | None = None) -> int:
    """Claim one batch and process it; returns how many events were claimed."""
    worker = runtime.settings.worker
    async with runtime.sessions.begin() as session:
        events = await inbox.claim(
            session, worker_id=runtime.instance_id, limit=limit or worker.batch_size, lease_seconds=worker.lease_seconds
        )
    for index, event in enumerate(events):
        if runtime.stop.is_set():
            # Shutting down: hand the rest back instead of letting their leases run out.
            async with runtime.sessions.begin() as session:
                await inbox.release(session, [e.id for e in events[index:]], worker_id=runtime.instance_id)
            break
        await process_event(runtime, event)
    return len(events)


async def drain(runtime: Runtime, *, timeout: float = 30.0) -> None:  # noqa: ASYNC109 - a budget
    """Process until nothing is due (tests and the `worker --once` command)."""
    deadline = time.monotonic() + timeout
    while await process_batch(runtime):
        if time.monotonic() > deadline:
            raise TimeoutError("inbox did not drain in time")


async def _refresh_depth(runtime: Runtime) -> None:
    async with runtime.sessions() as session:
        for status, count in (await inbox.depth(session)).items():
            runtime.metrics.inbox_depth.labels(status).set(count)


async def inbox_loop(runtime: Runtime, stop: asyncio.Event) -> None:
    poll = runtime.settings.worker.poll_interval
    next_depth = 0.0
    while not stop.is_set():
        claimed = 0
        try:
            claimed = await process_batch(runtime)
            if time.monotonic() >= next_depth:
                await _refresh_depth(runtime)
                next_depth = time.monotonic() + DEPTH_REFRESH_SECONDS
        except Exception:  # the database may be briefly away; keep the loop alive
            log.warning("inbox.loop_error", exc_info=True)
        if not claimed:
            await runtime.idle(runtime.inbox_wakeup, poll)
