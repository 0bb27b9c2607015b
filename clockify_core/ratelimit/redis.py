"""A token bucket shared through Redis, so every process on every host spends one budget.

The whole bucket step (refill, compare, take) is one Lua script, run atomically by
Redis. It reads the time with ``redis.call('TIME')``, so only the Redis server's clock
matters: hosts with skewed clocks still refill the bucket at exactly ``rate``. A bucket
key expires once it has been idle long enough to be full again, which is the same state
as a missing key. Needs Redis 5 or later (scripts replicate by effects, so ``TIME``
before a write is allowed).

When Redis fails (refused connection, timeout, any Redis error), the limiter never
raises to its caller; it follows ``fallback``:

* ``"local"``: an in-process bucket at the same limit takes over. N processes then
  spend up to N times the budget until Redis is back, which beats stopping all outbound
  calls. ``ratelimit.redis_unavailable`` is logged once per outage and
  ``ratelimit.redis_recovered`` when a probe succeeds again.
* ``"deny"``: every call gets a wait until the next probe, so callers back off.

While Redis is down it is probed at most once per ``retry_interval`` seconds, so an
outage does not add a connection attempt to every call.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import structlog
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from clockify_core.ratelimit.base import TOKEN_EPSILON, Limit, check_cost
from clockify_core.ratelimit.memory import InMemoryRateLimiter

Fallback = Literal["local", "deny"]

log = structlog.get_logger("clockify_core.ratelimit")

# KEYS[1]: the bucket hash {t = tokens left, ts = Redis time of the last grant in µs}.
# ARGV: rate (tokens/s), burst, cost, idle TTL (ms), epsilon (see base.TOKEN_EPSILON).
# Returns {1, "0"} when granted, else {0, "<seconds to wait>"}; the wait travels as a
# string because Redis truncates Lua numbers to integers on the way out.
BUCKET_STEP_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local epsilon = tonumber(ARGV[5])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local state = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
else
  tokens = math.min(burst, tokens + math.max(0, now - ts) / 1000000 * rate)
end
if tokens + epsilon < cost then
  return {0, string.format('%.17g', (cost - tokens) / rate)}
end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens - cost), 'ts', string.format('%.0f', now))
redis.call('PEXPIRE', KEYS[1], ttl)
return {1, '0'}
"""

# Errors that mean "Redis is not answering properly"; OSError covers refused sockets and
# the builtin TimeoutError raised by asyncio.timeout.
_REDIS_FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError)

# Added to a bucket's idle TTL so a key never expires a moment before it is full.
_TTL_MARGIN_MS = 1000
# The smallest wait "deny" returns, so it is never mistaken for a grant.
_MIN_DENY_WAIT = 0.001


class LuaScript:
    """A script run by SHA: ``EVALSHA`` first, ``SCRIPT LOAD`` only on ``NOSCRIPT``.

    Redis caches loaded scripts for every client, so the source crosses the network once
    per server (and again only after a restart or ``SCRIPT FLUSH``).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(
        self, redis: Redis, keys: Sequence[str], args: Sequence[str | int | float]
    ) -> Any:
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            loaded = await redis.script_load(self.source)
            if isinstance(loaded, bytes):
                loaded = loaded.decode()
            if loaded != self.sha:  # pragma: no cover - only a Redis bug would get here
                raise RuntimeError(f"Redis returned SHA {loaded} for script {self.sha}") from None
            return await redis.evalsha(self.sha, len(keys), *keys, *args)


_BUCKET_STEP = LuaScript(BUCKET_STEP_LUA)


class RedisRateLimiter:
    """Token buckets in Redis under ``{key_prefix}ratelimit:{key}``.

    ``redis`` is owned by the caller (the app lifespan); :meth:`aclose` does not close it.
    ``timeout`` bounds each Redis round trip whatever the client's own socket timeouts
    and retry policy are. ``clock`` (monotonic seconds) drives only the probe interval
    and the local fallback; the shared buckets run on Redis time.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        default: Limit,
        key_prefix: str,
        fallback: Fallback = "local",
        timeout: float = 0.5,
        retry_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if fallback not in ("local", "deny"):
            raise ValueError(f"fallback must be 'local' or 'deny', got {fallback!r}")
        if not timeout > 0 or not retry_interval > 0:
            raise ValueError("timeout and retry_interval must be positive")
        self.default = default
        self.fallback: Fallback = fallback
        self._redis = redis
        self._namespace = f"{key_prefix}ratelimit:"
        self._timeout = timeout
        self._retry_interval = retry_interval
        self._clock = clock
        self._local = InMemoryRateLimiter(default, clock=clock)
        self._down_since: float | None = None
        self._next_probe = 0.0

    @property
    def redis_available(self) -> bool:
        """False from a failed Redis call until the next successful one."""
        return self._down_since is None

    def redis_key(self, key: str) -> str:
        """The Redis key holding the bucket of ``key``."""
        return self._namespace + key

    async def try_acquire(self, key: str, *, cost: int = 1, limit: Limit | None = None) -> float:
        limit = limit or self.default
        check_cost(cost, limit)
        now = self._clock()
        if self._down_since is not None and now < self._next_probe:
            return await self._fallback(key, cost, limit, now)
        ttl_ms = math.ceil(limit.refill_seconds * 1000) + _TTL_MARGIN_MS
        try:
            async with asyncio.timeout(self._timeout):
                granted, wait = await _BUCKET_STEP(
                    self._redis,
                    [self.redis_key(key)],
                    [repr(limit.rate), limit.burst, cost, ttl_ms, repr(TOKEN_EPSILON)],
                )
        except _REDIS_FAILURES as exc:
            self._mark_down(exc, now)
            return await self._fallback(key, cost, limit, now)
        self._mark_up()
        return 0.0 if int(granted) == 1 else float(wait)

    async def _fallback(self, key: str, cost: int, limit: Limit, now: float) -> float:
        if self.fallback == "local":
            return await self._local.try_acquire(key, cost=cost, limit=limit)
        return max(self._next_probe - now, _MIN_DENY_WAIT)

    def _mark_down(self, exc: BaseException, now: float) -> None:
        self._next_probe = now + self._retry_interval
        if self._down_since is None:
            self._down_since = now
            log.warning(
                "ratelimit.redis_unavailable",
                error=type(exc).__name__,
                detail=str(exc)[:200],
                fallback=self.fallback,
            )

    def _mark_up(self) -> None:
        if self._down_since is not None:
            log.info(
                "ratelimit.redis_recovered",
                outage_seconds=round(self._clock() - self._down_since, 3),
            )
            self._down_since = None
            # Buckets spent during the outage say nothing about the shared budget.
            self._local = InMemoryRateLimiter(self.default, clock=self._clock)

    async def aclose(self) -> None:
        await self._local.aclose()
