"""Between fetching and writing: pages in, batched transactions out, memory bounded.

Fetch tasks hand pages to a :class:`Sink`; it cuts them into batches of
``sync.batch_rows`` and ``sync.writers`` tasks write batches concurrently, each in its
own transaction (:class:`~clockify_core.sync.bulk.BulkWriter`). The queue between
them holds at most one batch per writer, so a fast API cannot outrun the database
with the whole workspace in memory: ``add`` waits when the writers are behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from clockify_core.sync.bulk import BulkWriter
from clockify_core.sync.progress import Progress


class Sink:
    def __init__(
        self,
        writer: BulkWriter,
        kind: str,
        workspace_id: str,
        *,
        written_by: str,
        batch_rows: int,
        writers: int,
        progress: Progress,
    ) -> None:
        self.writer = writer
        self.kind = kind
        self.workspace_id = workspace_id
        self.written_by = written_by
        self.batch_rows = batch_rows
        self.progress = progress
        self.written = 0
        self.received = 0
        self._buffer: dict[str, Any] = {}
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=writers)
        self._tasks = [asyncio.create_task(self._write_loop()) for _ in range(writers)]
        self._error: BaseException | None = None

    def take(self, bodies: Sequence[Mapping[str, Any]]) -> None:
        """Convert a page into buffered rows now (:meth:`BulkWriter.prepare`): compact tuples
        stay, the parsed JSON can go. Follow with :meth:`ready`."""
        self._raise()
        self.received += len(bodies)
        self._buffer.update(self.writer.prepare(self.kind, self.workspace_id, bodies, written_by=self.written_by))

    async def ready(self) -> None:
        """Hand a full batch to the writers, waiting while they are behind."""
        if len(self._buffer) >= self.batch_rows:
            batch, self._buffer = self._buffer, {}
            await self._queue.put(batch)
        self._raise()

    async def add(self, bodies: Sequence[Mapping[str, Any]]) -> None:
        """:meth:`take` and :meth:`ready`. Callers holding large pages should drop their own
        reference between the two, so the parsed page is freed before the wait."""
        self.take(bodies)
        await self.ready()

    async def close(self) -> int:
        """Write what is buffered and wait for every batch; returns the rows written."""
        self._raise()
        if self._buffer:
            batch, self._buffer = self._buffer, {}
            await self._queue.put(batch)
        for _ in self._tasks:
            await self._queue.put(None)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._raise()
        return self.written

    async def abort(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    async def _write_loop(self) -> None:
        while True:
            batch = await self._queue.get()
            if batch is None:
                return
            if self._error is not None:
                continue  # keep draining so producers never block on a dead sink
            try:
                count = await self.writer.write(self.kind, self.workspace_id, batch, written_by=self.written_by)
                self.written += count
                self.progress.wrote(count)
                await self.progress.flush()
            except BaseException as exc:  # handed to the producer through add()/close()
                self._error = exc
                if isinstance(exc, asyncio.CancelledError):
                    raise

    async def __aenter__(self) -> Sink:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            await self.close()
        else:
            await self.abort()
