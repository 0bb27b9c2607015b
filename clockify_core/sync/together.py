"""Running a pull's concurrent steps: one failure stops the others, a spent budget lets them stop.

Every concurrent part of a pull (windows, report pages, users, projects, a bootstrap's
tasks beside its time entries) runs through :func:`together`. A real failure cancels the
siblings at once. A :class:`~clockify_core.errors.RateLimited` does not: the budget is the
workspace's, so each sibling stops at its own next request, after recording what it has
taken, and the job defers with every step's place kept (docs/sync.md, "Rate limits and
failures"). Cancelling them instead would drop what they had read and not yet marked done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from clockify_core.errors import RateLimited


async def together(*steps: Coroutine[Any, Any, None]) -> None:
    """Run ``steps`` concurrently and raise the first failure (see the module doc)."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        await asyncio.gather(*tasks)
    except RateLimited:
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def pool(work: Callable[[Any], Awaitable[None]], items: Iterable[Any], workers: int) -> None:
    """Run ``work`` over ``items``, ``workers`` at a time (bounded memory), via :func:`together`."""
    queue = iter(items)

    async def worker() -> None:
        for item in queue:
            await work(item)

    await together(*(worker() for _ in range(max(1, workers))))
