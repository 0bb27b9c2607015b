"""The limiter interface every implementation follows.

A limiter keeps one token bucket per key (see :func:`limiter_key`: one per add-on and
workspace, which is how Clockify counts its 50 requests/second). ``try_acquire`` never
blocks; :func:`acquire` is the helper that waits.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from clockify_core.errors import RateLimited

# A bucket this close to ``cost`` tokens grants: a float clock (epoch seconds have ~0.2 µs
# resolution) can leave a residue whose wait is too short to ever advance the clock.
TOKEN_EPSILON = 1e-6


@dataclass(frozen=True, slots=True)
class Limit:
    """A token bucket: ``rate`` tokens per second refill, at most ``burst`` stored.

    A bucket nobody has touched for ``burst / rate`` seconds is full again.
    """

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate must be positive, got {self.rate!r}")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, got {self.burst!r}")

    @classmethod
    def per_hour(cls, count: int) -> Limit:
        """At most ``count`` requests in any hour, a tenth of them (at least one) available at once.

        A bucket grants at most ``burst + rate * T`` in any span ``T``, so the refill is the
        rest of the budget spread over the hour: 3 + 27 for 30, never 33. A budget of 1
        cannot be expressed by a bucket that starts full; it gets 1 at once plus 1 an hour.
        """
        burst = max(1, count // 10)
        return cls(rate=max(1, count - burst) / 3600.0, burst=burst)

    @property
    def refill_seconds(self) -> float:
        """Seconds for an empty bucket to fill up completely."""
        return self.burst / self.rate

    def ready_after(self, wait: float, tokens: int) -> float:
        """Seconds until ``tokens`` (at most ``burst``) are stored, when the first is ``wait``
        seconds away.

        Tokens come back at ``rate``, so the others follow the first one at that pace (if
        nobody else spends them meanwhile). A job that goes back to the queue resumes then,
        with several requests to go on with rather than one per claim.
        """
        return max(0.0, wait) + (min(max(1, tokens), self.burst) - 1) / self.rate


def check_cost(cost: int, limit: Limit) -> None:
    """Refuse a cost the bucket can never grant (waiting for it would loop forever)."""
    if cost < 1:
        raise ValueError(f"cost must be at least 1, got {cost!r}")
    if cost > limit.burst:
        raise ValueError(f"cost {cost} exceeds the bucket capacity {limit.burst}")


def limiter_key(addon_key: str, workspace_id: str) -> str:
    """The bucket key of one add-on in one workspace: Clockify's unit of rate limiting.

    Implementations add their own namespace (a Redis limiter prepends its key prefix).
    """
    if not addon_key or not workspace_id:
        raise ValueError("limiter_key needs a non-empty add-on key and workspace id")
    return f"{addon_key}:{workspace_id}"


class SleepFn(Protocol):
    async def __call__(self, seconds: float, /) -> None: ...


class RateLimiter(Protocol):
    default: Limit

    async def try_acquire(self, key: str, *, cost: int = 1, limit: Limit | None = None) -> float:
        """Take ``cost`` tokens now if available and return 0; otherwise take nothing and
        return the seconds until they will be.

        Raises :class:`ValueError` when ``cost`` is below 1 or above the bucket's burst.
        """
        ...

    async def aclose(self) -> None: ...


async def acquire(
    limiter: RateLimiter,
    key: str,
    *,
    cost: int = 1,
    limit: Limit | None = None,
    max_wait: float | None = None,
    sleep: SleepFn | None = None,
) -> float:
    """Wait until the tokens are granted; returns the seconds waited.

    Raises :class:`RateLimited` (before sleeping) when the total wait would exceed
    ``max_wait``. ``sleep`` is injectable so tests do not wait for real.
    """
    sleep = sleep or asyncio.sleep
    waited = 0.0
    while True:
        wait = await limiter.try_acquire(key, cost=cost, limit=limit)
        if wait <= 0:
            return waited
        if max_wait is not None and waited + wait > max_wait:
            raise RateLimited(f"Rate limit for {key} needs {wait:.2f}s more", retry_after=wait)
        await sleep(wait)
        waited += wait
