"""A transport between a service and the simulator that records every request it sends and
can hold matching ones, so a test arranges "X happens while a request is in flight" by
ordering, never by timing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx


class Gate(httpx.AsyncBaseTransport):
    """Between the service and the simulator: records each request when it is sent and,
    once :meth:`hold_after` matched enough requests, holds the next matching ones until
    :meth:`release`."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: list[tuple[str, str, str | None]] = []
        self.holding = asyncio.Event()
        self._released = asyncio.Event()
        self._released.set()
        self._match: Callable[[httpx.Request], bool] = lambda _: False
        self._passed = 0
        self._after = 0

    def hold_after(self, count: int, match: Callable[[httpx.Request], bool] = lambda _: True) -> None:
        self._match, self._after, self._passed = match, count, 0
        self._released.clear()

    def release(self) -> None:
        self._match = lambda _: False
        self._released.set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path, request.headers.get("x-addon-token")))
        if self._match(request):
            self._passed += 1
            if self._passed > self._after:
                self.holding.set()
                await self._released.wait()
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
