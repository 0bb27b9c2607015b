"""In-process token bucket: the default when Redis is not configured.

Every process keeps its own budget, so N worker processes together may spend N times
the limit; use :class:`~clockify_core.ratelimit.redis.RedisRateLimiter` to share one.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from clockify_core.ratelimit.base import TOKEN_EPSILON, Limit, check_cost


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    limit: Limit


class InMemoryRateLimiter:
    """Buckets per key, refilled lazily from a monotonic clock (injectable for tests).

    ``try_acquire`` never awaits between reading and writing a bucket, so it is atomic
    on the event loop without a lock (and not bound to any one loop). It is not meant
    to be shared between threads.

    At most ``max_keys`` buckets are kept, however many workspaces call: at the bound,
    buckets that have refilled are dropped (they carry nothing), and if none has, the least
    recently used one (which then starts full again when its key comes back).
    """

    def __init__(
        self,
        default: Limit,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.default = default
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._max_keys = max(1, max_keys)

    def __len__(self) -> int:
        return len(self._buckets)

    def _take(self, key: str, cost: int, limit: Limit) -> float:
        check_cost(cost, limit)
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._evict_full(now)
            while len(self._buckets) >= self._max_keys:
                self._buckets.popitem(last=False)
            bucket = self._buckets[key] = _Bucket(
                tokens=float(limit.burst), updated=now, limit=limit
            )
        else:
            self._buckets.move_to_end(key)
            # max(): an injected clock may step backwards; never refill negatively.
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(limit.burst), bucket.tokens + elapsed * limit.rate)
            bucket.updated = now
            bucket.limit = limit
        if bucket.tokens + TOKEN_EPSILON >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / limit.rate

    def _evict_full(self, now: float) -> None:
        # A bucket that has refilled completely (under its own limit) carries no state
        # worth keeping: recreating it later gives the same answer.
        for key, bucket in list(self._buckets.items()):
            limit = bucket.limit
            if bucket.tokens + max(0.0, now - bucket.updated) * limit.rate >= limit.burst:
                del self._buckets[key]

    async def try_acquire(self, key: str, *, cost: int = 1, limit: Limit | None = None) -> float:
        return self._take(key, cost, limit or self.default)

    async def aclose(self) -> None:
        self._buckets.clear()
