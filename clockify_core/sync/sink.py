"""Between fetching and writing: pages in, batched transactions out, memory bounded.

Fetch tasks hand pages to a :class:`Sink`; it cuts them into batches of
``sync.batch_rows`` and ``sync.writers`` tasks write batches concurrently, each in its
own transaction (:class:`~clockify_core.sync.bulk.BulkWriter`). The queue between
them holds at most one batch per writer, so a fast API cannot outrun the database
with the whole workspace in memory: ``add`` waits when the writers are behind.

That alone lets every fetch task take one more page before it waits, so with
``sync.concurrency`` requests in flight the rows held grow with the concurrency.
Fetch tasks that read large pages therefore ask for :meth:`Sink.room` before each
request: it waits while the rows held (buffered, queued, being written) plus the page
sizes of the requests in flight reach :attr:`Sink.max_rows` (``sync.batch_rows`` x
(``sync.writers`` + 2)), so they stay under that plus one page, whatever the concurrency.
With the defaults (5,000-row batches and pages, two writers) that is up to four page
requests in flight while the writers keep up, fewer while they are behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
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
        # The bound :meth:`room` keeps: rows held (see :attr:`held`) plus rows promised to requests.
        self.max_rows = batch_rows * (writers + 2)
        self._out = 0  # rows handed to the writers (queued or being written), not yet written
        self._promised = 0  # rows :meth:`room` set aside for requests in flight
        self._freed = asyncio.Event()

    @property
    def held(self) -> int:
        """Rows taken and not yet written: buffered, queued, or being written."""
        return len(self._buffer) + self._out

    @contextlib.asynccontextmanager
    async def room(self, rows: int) -> AsyncIterator[None]:
        """Wait until the rows held and promised are under :attr:`max_rows`, then promise ``rows``
        (the size of the page about to be requested) until the block ends; the page is taken
        (:meth:`take`) inside it. Held plus promised rows so stay under ``max_rows`` plus one page.

        Only rows handed to the writers can fall while a fetch task waits: the buffer alone is
        below ``batch_rows``, which is below ``max_rows``, so a wait always ends.
        """
        while self.held + self._promised >= self.max_rows:
            self._raise()
            self._freed.clear()
            await self._freed.wait()
        self._raise()
        self._promised += rows
        try:
            yield
        finally:
            self._promised -= rows
            self._freed.set()

    def take(self, bodies: Sequence[Mapping[str, Any]]) -> None:
        """Convert a page into buffered rows now (:meth:`BulkWriter.prepare`): compact tuples
        stay, the parsed JSON can go. Follow with :meth:`ready`."""
        self._raise()
        self.received += len(bodies)
        self._buffer.update(self.writer.prepare(self.kind, self.workspace_id, bodies, written_by=self.written_by))

    async def ready(self) -> None:
        """Hand a full batch to the writers, waiting while they are behind."""
        if len(self._buffer) >= self.batch_rows:
            await self._put()
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
            await self._put()
        for _ in self._tasks:
            await self._queue.put(None)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._raise()
        return self.written

    async def _put(self) -> None:
        batch, self._buffer = self._buffer, {}
        self._out += len(batch)
        await self._queue.put(batch)

    async def abort(self) -> None:
        self._freed.set()
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
            try:
                if self._error is not None:
                    continue  # keep draining so producers never block on a dead sink
                count = await self.writer.write(self.kind, self.workspace_id, batch, written_by=self.written_by)
                self.written += count
                self.progress.wrote(count)
                await self.progress.flush()
            except BaseException as exc:  # handed to the producer through add()/close()/room()
                self._error = exc
                if isinstance(exc, asyncio.CancelledError):
                    raise
            finally:
                self._out -= len(batch)
                self._freed.set()

    async def __aenter__(self) -> Sink:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            await self.close()
        else:
            await self.abort()
