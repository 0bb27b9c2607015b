"""The receiver's fast path: group commit of inbox inserts and a short-lived subscription cache.

Group commit. Each accepted webhook needs its row durable before the 2xx goes out, but
a transaction per request costs a pool checkout with its pre-ping, BEGIN, INSERT, COMMIT
and a WAL flush each (and a pooled connection per request in flight). :class:`InboxWriter`
queues the events of concurrent requests and writes each batch with one INSERT statement
(on PostgreSQL outside any transaction, so it is atomic and durable when it returns:
one round trip and one WAL flush per batch). Every request awaits the outcome of its
own row, set only once the statement returned, or the error, which the request turns
into a 503 so Clockify retries. An idle writer writes a lone event at once, so batching
adds no wait at low load; under load, events gather while the previous batch is written.
A flusher keeps its connection while events keep coming.

Subscription cache. Which subscription a (token, route) belongs to changes only at
install, uninstall and re-registration, so the lookup is remembered for a few seconds.
A stale entry cannot let a revoked token in: the INSERT re-checks that the subscription
is still active with that token on a live installation (``inbox.store_batch``), and a
refusal there evicts the entry and answers 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from clockify_core.config import WebhookConfig
from clockify_core.db.failures import is_database_outage
from clockify_core.errors import ServiceUnavailable
from clockify_core.observability.metrics import Metrics
from clockify_core.webhooks import inbox

log = structlog.get_logger(__name__)

# Bodies can be megabytes each (webhooks.max_body_bytes); one statement carries at most this much.
MAX_BATCH_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SubscriptionMatch:
    """What the receiver needs of a webhook subscription and its installation."""

    subscription_id: int
    event_type: str
    workspace_id: str
    addon_id: str
    token_digest: str


class SubscriptionCache:
    """A bounded LRU of (token digest, path) → :class:`SubscriptionMatch`, each kept ``ttl`` seconds."""

    def __init__(self, ttl: float, size: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.size = size
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], tuple[float, SubscriptionMatch]] = OrderedDict()
        self._loading: dict[tuple[str, str], asyncio.Future[SubscriptionMatch | None]] = {}

    def get(self, digest: str, path: str) -> SubscriptionMatch | None:
        key = (digest, path)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, digest: str, path: str, match: SubscriptionMatch) -> None:
        if self.ttl <= 0 or self.size <= 0:
            return
        self._entries[(digest, path)] = (self._clock() + self.ttl, match)
        self._entries.move_to_end((digest, path))
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    async def load(
        self, digest: str, path: str, loader: Callable[[], Awaitable[SubscriptionMatch | None]]
    ) -> SubscriptionMatch | None:
        """The cached match, else ``loader()``'s; concurrent misses of one key share one load.

        A miss is remembered only when found (``None`` is never cached).
        """
        match = self.get(digest, path)
        if match is not None:
            return match
        key = (digest, path)
        pending = self._loading.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except Exception:
                return await loader()
        future: asyncio.Future[SubscriptionMatch | None] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        self._loading[key] = future
        try:
            match = await loader()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            del self._loading[key]
        future.set_result(match)
        if match is not None:
            self.put(digest, path, match)
        return match

    def discard(self, digest: str, path: str) -> None:
        self._entries.pop((digest, path), None)

    def clear(self) -> None:
        self._entries.clear()


_Waiter = tuple[inbox.NewEvent, "asyncio.Future[inbox.Stored | None]"]


class InboxWriter:
    """Group commit of inbox inserts: :meth:`store` returns once the event's row is committed.

    At most ``flushers`` transactions are in flight; each takes up to ``max_batch`` queued
    events. ``None`` means the subscription check refused the event. A flusher keeps its
    connection for ``linger`` seconds after its last batch, so steady traffic pays no pool
    checkout or pre-ping per batch.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_batch: int = 200,
        flushers: int = 2,
        linger: float = 1.0,
        metrics: Metrics | None = None,
    ) -> None:
        self._engine = engine
        self.max_batch = max_batch
        self.flushers = flushers
        self.linger = linger
        self._metrics = metrics
        self._queue: list[_Waiter] = []
        self._active = 0
        self._idle: list[asyncio.Future[None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    async def store(self, event: inbox.NewEvent) -> inbox.Stored | None:
        future: asyncio.Future[inbox.Stored | None] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        self._queue.append((event, future))
        self._wake()
        # A cancelled request cancels only its own future; the flusher skips done futures.
        return await future

    def _wake(self) -> None:
        """Hand the queue to an idle flusher, else start one if fewer than ``flushers`` run."""
        while self._idle:
            waiter = self._idle.pop()
            if not waiter.done():
                waiter.set_result(None)
                return
        if self._queue and self._active < self.flushers:
            self._active += 1
            task = asyncio.create_task(self._run(), name="inbox-group-commit")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Write what is queued, then release the connections (app shutdown)."""
        self._closing = True
        for waiter in self._idle:
            if not waiter.done():
                waiter.set_result(None)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _wait_for_work(self) -> bool:
        """True when events are queued; False after ``linger`` idle seconds or at shutdown."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.linger
        while not self._queue:
            remaining = deadline - loop.time()
            if self._closing or remaining <= 0:
                return False
            waiter: asyncio.Future[None] = loop.create_future()
            self._idle.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                pass
            finally:
                if waiter in self._idle:
                    self._idle.remove(waiter)
        return True

    async def _run(self) -> None:
        # The task inherited the context of the request that started it; its logs are its own.
        structlog.contextvars.clear_contextvars()
        try:
            async with self._engine.connect() as conn:
                # On PostgreSQL a batch is one INSERT statement outside any transaction: atomic
                # and durable on its own, without BEGIN and COMMIT round trips.
                while await self._wait_for_work():
                    batch = self._take()
                    if not await self._flush(conn, batch):
                        break  # the connection may be broken: what is queued gets a fresh one
        except Exception as exc:  # no connection: fail what waits now rather than retry in a loop
            queued, self._queue = self._queue, []
            self._fail(queued, exc)
        finally:
            self._active -= 1
            self._wake()

    def _take(self) -> list[_Waiter]:
        """The next batch: up to ``max_batch`` events and about ``MAX_BATCH_BYTES`` of bodies."""
        size, n = 0, 0
        for event, _ in self._queue[: self.max_batch]:
            size += len(event.body)
            n += 1
            if size >= MAX_BATCH_BYTES:
                break
        batch = self._queue[:n]
        del self._queue[:n]
        return batch

    async def _flush(self, conn: AsyncConnection, batch: list[_Waiter]) -> bool:
        events = [event for event, _ in batch]
        try:
            results = await inbox.store_batch(conn, events)
            await conn.commit()
        except Exception as exc:
            outage = _is_outage(exc)
            with contextlib.suppress(Exception):
                await (conn.invalidate() if outage else conn.rollback())
            if len(batch) > 1 and not outage:
                # One bad event must not fail the others: write each on its own.
                return all([await self._flush(conn, [waiter]) for waiter in batch])
            self._fail(batch, exc)
            return False
        if self._metrics is not None:
            self._metrics.inbox_batch_size.observe(len(batch))
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
        return True

    def _fail(self, batch: list[_Waiter], exc: Exception) -> None:
        if not batch:
            return
        outage = _is_outage(exc)
        log.warning("inbox.batch_failed", error=type(exc).__name__, events=len(batch), outage=outage)
        for _, future in batch:
            if not future.done():
                future.set_exception(_failure(exc, outage))


def _is_outage(exc: BaseException) -> bool:
    return is_database_outage(exc) or inbox.is_driver_outage(exc)


def _failure(exc: Exception, outage: bool) -> Exception:
    """A fresh exception per waiter (one shared instance would collect every waiter's traceback)."""
    if outage:
        # 503 with Retry-After, as for any request that finds the database down: Clockify retries.
        return ServiceUnavailable("The database is unavailable; retry later", headers={"Retry-After": "5"})
    error = RuntimeError(f"storing the event failed: {type(exc).__name__}")
    error.__cause__ = exc
    return error


def _retrieve(future: asyncio.Future[Any]) -> None:
    # Marks the exception as seen when the request that awaited it was cancelled meanwhile.
    if not future.cancelled():
        future.exception()


@dataclass
class WebhookIngest:
    """Per-app state of the webhook receiver (see the module docstring)."""

    writer: InboxWriter
    subscriptions: SubscriptionCache

    @classmethod
    def from_config(cls, engine: AsyncEngine, config: WebhookConfig, metrics: Metrics | None = None) -> WebhookIngest:
        return cls(
            writer=InboxWriter(
                engine, max_batch=config.group_commit_max_batch, flushers=config.group_commit_flushers,
                metrics=metrics,
            ),
            subscriptions=SubscriptionCache(config.subscription_cache_seconds),
        )
