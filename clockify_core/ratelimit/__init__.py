"""Token-bucket rate limiting per (add-on, workspace): in-process, or shared through Redis."""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.asyncio import Redis

from clockify_core.config import RateLimitConfig
from clockify_core.ratelimit.base import Limit, RateLimiter, SleepFn, acquire, limiter_key
from clockify_core.ratelimit.memory import InMemoryRateLimiter
from clockify_core.ratelimit.redis import RedisRateLimiter


def default_limit(config: RateLimitConfig) -> Limit:
    """Clockify's budget for an add-on token: ``rate`` per second per workspace."""
    return Limit(rate=config.rate, burst=config.burst)


def free_plan_limit(config: RateLimitConfig) -> Limit:
    """The budget of a Free-plan workspace: at most ``free_plan_per_hour`` (30) in any hour.

    ``installation_api`` applies it to Free-plan installations; it shares the workspace's key.
    """
    return Limit.per_hour(config.free_plan_per_hour)


def global_limit(config: RateLimitConfig) -> Limit | None:
    """The deployment's cap on calls to Clockify across all workspaces; None when off (0).

    Its bucket holds a second's worth (at least one), so bursts stay within the cap.
    """
    if not config.global_per_second:
        return None
    return Limit(rate=config.global_per_second, burst=max(1, int(config.global_per_second)))


def create_rate_limiter(
    config: RateLimitConfig,
    redis: Redis | None,
    key_prefix: str = "",
    *,
    clock: Callable[[], float] = time.monotonic,
) -> RateLimiter:
    """A :class:`RedisRateLimiter` when a Redis client is given, else an in-process one.

    ``key_prefix`` is usually ``RedisConfig.key_prefix``; the caller keeps ownership of
    ``redis`` and closes it.
    """
    if redis is None:
        return InMemoryRateLimiter(default_limit(config), clock=clock)
    return RedisRateLimiter(
        redis,
        default=default_limit(config),
        key_prefix=key_prefix,
        fallback=config.redis_fallback,
        clock=clock,
    )


__all__ = [
    "InMemoryRateLimiter",
    "Limit",
    "RateLimiter",
    "RedisRateLimiter",
    "SleepFn",
    "acquire",
    "create_rate_limiter",
    "default_limit",
    "free_plan_limit",
    "global_limit",
    "limiter_key",
]
