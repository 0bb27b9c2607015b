"""The in-process token bucket, the limiter helpers and the factory."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from clockify_core.config import RateLimitConfig
from clockify_core.errors import RateLimited
from clockify_core.ratelimit import (
    InMemoryRateLimiter,
    Limit,
    RedisRateLimiter,
    acquire,
    create_rate_limiter,
    free_plan_limit,
    limiter_key,
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def test_burst_then_wait_for_one_token() -> None:
    clock = FakeClock()
    limiter = InMemoryRateLimiter(Limit(rate=10, burst=3), clock=clock)
    assert [await limiter.try_acquire("k") for _ in range(3)] == [0, 0, 0]
    assert await limiter.try_acquire("k") == pytest.approx(0.1)


async def test_refill_is_proportional_and_capped_at_burst() -> None:
    clock = FakeClock()
    limiter = InMemoryRateLimiter(Limit(rate=10, burst=3), clock=clock)
    for _ in range(3):
        await limiter.try_acquire("k")
    clock.advance(0.25)  # 2.5 tokens
    assert await limiter.try_acquire("k", cost=2) == 0
    assert await limiter.try_acquire("k") == pytest.approx(0.05)
    clock.advance(3600)
    assert [await limiter.try_acquire("k") for _ in range(4)][:3] == [0, 0, 0]


async def test_denied_call_takes_nothing_and_keys_are_isolated() -> None:
    clock = FakeClock()
    limiter = InMemoryRateLimiter(Limit(rate=1, burst=5), clock=clock)
    assert await limiter.try_acquire("a", cost=4) == 0
    assert await limiter.try_acquire("a", cost=3) == pytest.approx(2.0)
    assert await limiter.try_acquire("a", cost=1) == 0  # the refused 3 were not taken
    assert await limiter.try_acquire("b", cost=5) == 0


async def test_cost_outside_the_bucket_is_refused() -> None:
    limiter = InMemoryRateLimiter(Limit(rate=1, burst=5))
    with pytest.raises(ValueError, match="exceeds the bucket capacity"):
        await limiter.try_acquire("k", cost=6)
    with pytest.raises(ValueError, match="at least 1"):
        await limiter.try_acquire("k", cost=0)


async def test_eviction_keeps_buckets_that_are_not_full_under_their_own_limit() -> None:
    clock = FakeClock()
    limiter = InMemoryRateLimiter(Limit(rate=50, burst=10), clock=clock, max_keys=2)
    hourly = Limit.per_hour(30)
    for _ in range(hourly.burst):
        assert await limiter.try_acquire("free", limit=hourly) == 0
    await limiter.try_acquire("paid")
    clock.advance(1.0)  # "paid" is full again; "free" has refilled 1/120 of a token
    await limiter.try_acquire("third")  # evicts "paid" only
    assert await limiter.try_acquire("free", limit=hourly) > 100


async def test_acquire_sleeps_until_granted_and_respects_max_wait() -> None:
    clock = FakeClock()
    limiter = InMemoryRateLimiter(Limit(rate=2, burst=1), clock=clock)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    assert await acquire(limiter, "k", sleep=sleep) == 0
    assert await acquire(limiter, "k", sleep=sleep) == pytest.approx(0.5)
    assert slept == [pytest.approx(0.5)]
    with pytest.raises(RateLimited) as caught:
        await acquire(limiter, "k", sleep=sleep, max_wait=0.1)
    assert caught.value.headers["Retry-After"] == "1"


def test_limits_and_keys() -> None:
    assert Limit.per_hour(30) == Limit(rate=27 / 3600, burst=3)
    assert free_plan_limit(RateLimitConfig(free_plan_per_hour=60)).burst == 6
    assert Limit(rate=50, burst=10).refill_seconds == pytest.approx(0.2)
    with pytest.raises(ValueError, match="rate"):
        Limit(rate=0, burst=1)
    assert limiter_key("time-bot", "ws1") == "time-bot:ws1"
    with pytest.raises(ValueError, match="non-empty"):
        limiter_key("", "ws1")


async def test_ready_after_is_when_the_limiter_grants_that_many_again() -> None:
    # Checked against the bucket itself: after waiting ready_after(first wait, n), n calls pass.
    for limit, tokens in ((Limit.per_hour(30), 3), (Limit.per_hour(300), 3), (Limit.per_hour(300), 100)):
        clock = FakeClock()
        limiter = InMemoryRateLimiter(limit, clock=clock)
        while (wait := await limiter.try_acquire("k")) == 0:
            pass
        clock.advance(limit.ready_after(wait, tokens) + 1e-3)
        granted = min(tokens, limit.burst)
        assert [await limiter.try_acquire("k") for _ in range(granted)] == [0] * granted
        assert await limiter.try_acquire("k") > 0
    # A 30-token bucket is not waited for to the brim: three tokens, 24 s at 300 an hour.
    assert Limit.per_hour(300).ready_after(0.0, 3) == pytest.approx(2 / (270 / 3600))


async def test_factory_picks_the_implementation() -> None:
    config = RateLimitConfig(rate=5, burst=2, redis_fallback="deny")
    local = create_rate_limiter(config, None)
    assert isinstance(local, InMemoryRateLimiter)
    assert local.default == Limit(5, 2)
    client = aioredis.Redis(host="127.0.0.1", port=1)  # never contacted here
    shared = create_rate_limiter(config, client, "app:")
    assert isinstance(shared, RedisRateLimiter)
    assert shared.fallback == "deny"
    assert shared.redis_key("x:y") == "app:ratelimit:x:y"
    await client.aclose()
