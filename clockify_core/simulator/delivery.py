"""Webhook delivery: a queue drained by background senders, with the faults real deliveries have.

Options (``DeliverySettings``): duplicate sends, reordering inside a window, retries with
exponential backoff on non-2xx or transport errors. Every attempt is logged, so a test
can assert that each event was answered 2xx. Enqueueing never waits, so API responses
are never held up by an add-on.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import structlog

from clockify_core.simulator.config import DeliverySettings

log = structlog.get_logger("clockify_core.simulator.delivery")

DeliveryStatus = Literal["pending", "delivered", "failed"]


@dataclass(frozen=True, slots=True)
class Target:
    """Where one subscription sends: a manifest webhook (ADDON) or one made through the API."""

    webhook_id: str
    url: str
    token: str
    kind: Literal["ADDON", "USER_CREATED"]
    addon_id: str | None = None


@dataclass(slots=True)
class Attempt:
    at: float
    status_code: int | None
    error: str | None
    elapsed_ms: float


@dataclass(slots=True)
class Delivery:
    id: int
    event: str
    workspace_id: str
    target: Target
    body: bytes
    duplicate: bool = False
    status: DeliveryStatus = "pending"
    attempts: list[Attempt] = field(default_factory=list)
    created: float = 0.0

    def summary(self) -> dict[str, Any]:
        last = self.attempts[-1] if self.attempts else None
        return {
            "id": self.id,
            "event": self.event,
            "workspaceId": self.workspace_id,
            "webhookId": self.target.webhook_id,
            "addonId": self.target.addon_id,
            "url": self.target.url,
            "kind": self.target.kind,
            "duplicate": self.duplicate,
            "status": self.status,
            "statusCode": last.status_code if last else None,
            "error": last.error if last else None,
            "attempts": [{"at": a.at, "statusCode": a.status_code, "error": a.error, "elapsedMs": round(a.elapsed_ms, 2)}
                         for a in self.attempts],
        }


class DeliveryService:
    def __init__(
        self,
        settings: DeliverySettings,
        client: Callable[[], httpx.AsyncClient],
        *,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._client = client
        self._rng = random.Random(f"delivery:{seed}")
        self._clock = clock
        self._queue: asyncio.Queue[Delivery] | None = None
        self._held: list[Delivery] = []
        self._flush_task: asyncio.Task[None] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._retries: set[asyncio.Task[None]] = set()
        self._pending = 0
        self._idle: asyncio.Event | None = None
        self._seq = 0
        self.log: list[Delivery] = []

    # lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        if self._workers:
            return
        self._queue = asyncio.Queue()
        self._idle = asyncio.Event()
        if self._pending == 0:
            self._idle.set()
        self._workers = [asyncio.create_task(self._work(), name=f"sim-delivery-{i}") for i in range(self.settings.concurrency)]

    async def aclose(self) -> None:
        tasks = [*self._workers, *self._retries]
        if self._flush_task:
            tasks.append(self._flush_task)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers, self._retries, self._flush_task = [], set(), None

    async def reconfigure(self, settings: DeliverySettings) -> None:
        concurrency_changed = settings.concurrency != self.settings.concurrency
        self.settings = settings
        if concurrency_changed and self._workers:
            for task in self._workers:
                task.cancel()
            for task in self._workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._workers = [asyncio.create_task(self._work()) for _ in range(settings.concurrency)]

    # queueing -------------------------------------------------------------------------
    def enqueue(self, event: str, workspace_id: str, body: bytes, targets: list[Target]) -> list[Delivery]:
        made: list[Delivery] = []
        for target in targets:
            copies = 2 if self.settings.duplicate_rate and self._rng.random() < self.settings.duplicate_rate else 1
            for n in range(copies):
                self._seq += 1
                made.append(Delivery(self._seq, event, workspace_id, target, body, duplicate=n > 0, created=self._clock()))
        for delivery in made:
            self._track(delivery)
            if self.settings.reorder_window > 1:
                self._hold(delivery)
            else:
                self._put(delivery)
        return made

    def _track(self, delivery: Delivery) -> None:
        self.log.append(delivery)
        if len(self.log) > self.settings.log_limit:
            del self.log[: len(self.log) - self.settings.log_limit]
        self._pending += 1
        if self._idle is not None:
            self._idle.clear()

    def _put(self, delivery: Delivery) -> None:
        if self._queue is None:
            raise RuntimeError("DeliveryService.start() was not awaited")
        self._queue.put_nowait(delivery)

    def _hold(self, delivery: Delivery) -> None:
        self._held.append(delivery)
        if len(self._held) >= self.settings.reorder_window:
            self._flush_held()
        elif self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.create_task(self._flush_later())

    def _flush_held(self) -> None:
        held, self._held = self._held, []
        self._rng.shuffle(held)
        for delivery in held:
            self._put(delivery)

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.settings.reorder_flush_ms / 1000)
        self._flush_held()

    # sending --------------------------------------------------------------------------
    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            delivery = await self._queue.get()
            try:
                await self._attempt(delivery)
            except Exception:  # a bug here must not kill the sender
                log.exception("delivery.crashed", delivery=delivery.id)
                self._finish(delivery, "failed")

    async def _attempt(self, delivery: Delivery) -> None:
        headers = {
            "Content-Type": "application/json",
            "Clockify-Signature": delivery.target.token,
            "Clockify-Webhook-Event-Type": delivery.event,
        }
        started = time.perf_counter()
        code: int | None = None
        error: str | None = None
        try:
            response = await self._client().post(
                delivery.target.url, content=delivery.body, headers=headers, timeout=self.settings.timeout_s
            )
            code = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        delivery.attempts.append(Attempt(self._clock(), code, error, (time.perf_counter() - started) * 1000))
        if code is not None and 200 <= code < 300:
            self._finish(delivery, "delivered")
        elif len(delivery.attempts) < self.settings.max_attempts:
            delay = self.settings.retry_backoff_ms / 1000 * 2 ** (len(delivery.attempts) - 1)
            task = asyncio.create_task(self._retry_later(delivery, delay))
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)
        else:
            log.info("delivery.failed", webhook_event=delivery.event, url=delivery.target.url, status=code, error=error)
            self._finish(delivery, "failed")

    async def _retry_later(self, delivery: Delivery, delay: float) -> None:
        await asyncio.sleep(delay)
        self._put(delivery)

    def _finish(self, delivery: Delivery, status: DeliveryStatus) -> None:
        delivery.status = status
        self._pending -= 1
        if self._pending <= 0 and self._idle is not None:
            self._pending = 0
            self._idle.set()

    # inspection -----------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return self._pending

    async def drain(self, timeout: float = 10.0) -> bool:  # noqa: ASYNC109 - a budget, not a cancel scope
        """Wait until every queued delivery has finished (delivered or given up)."""
        if self._held:
            self._flush_held()
        if self._idle is None:
            return self._pending == 0
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def query(self, *, event: str | None = None, status: str | None = None, addon_id: str | None = None,
              limit: int | None = None) -> list[Delivery]:
        out = [d for d in self.log
               if (event is None or d.event == event) and (status is None or d.status == status)
               and (addon_id is None or d.target.addon_id == addon_id)]
        return out[-limit:] if limit else out

    def clear(self) -> None:
        self.log.clear()
