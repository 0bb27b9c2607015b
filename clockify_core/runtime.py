"""Everything an app holds while it runs, built in its lifespan and torn down after.

Nothing here runs at import; tests build a fresh runtime per app.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import httpx
import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from clockify_core.client import ClockifyClient
from clockify_core.config import ServiceSettings
from clockify_core.db import create_engine, create_session_factory
from clockify_core.db.migrate import upgrade
from clockify_core.observability.metrics import Metrics
from clockify_core.ratelimit import RateLimiter, create_rate_limiter, global_limit
from clockify_core.security.crypto import TokenCipher
from clockify_core.security.keys import key_provider_from_config
from clockify_core.security.tokens import TokenVerifier
from clockify_core.tiers import ServiceProfile

log = structlog.get_logger(__name__)
T = TypeVar("T")

# A background loop: runs until ``stop`` is set; must return promptly after it is.
BackgroundLoop = Callable[["Runtime", asyncio.Event], Awaitable[None]]


@dataclass
class Runtime:
    settings: ServiceSettings
    profile: ServiceProfile
    metrics: Metrics
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: aioredis.Redis | None
    cipher: TokenCipher
    limiter: RateLimiter
    clockify: ClockifyClient
    verifier: TokenVerifier
    instance_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Capabilities register here while the app is composed (clockify_core.capability).
    job_handlers: dict[str, Any] = field(default_factory=dict)
    event_handlers: list[Any] = field(default_factory=list)
    # State a capability keeps for the lifespan, by type (the webhook receiver's WebhookIngest...).
    parts: dict[type, Any] = field(default_factory=dict)
    # Set to wake a sleeping loop at once (a lifecycle call just queued work).
    jobs_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    inbox_wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    def part(self, kind: type[T]) -> T:
        """The lifespan state of type ``kind`` a capability opened (``Capability.open``)."""
        found = self.parts.get(kind)
        if found is None:
            raise LookupError(f"no capability of this app keeps a {kind.__name__}")
        return cast(T, found)

    def start(self, name: str, loop: BackgroundLoop) -> None:
        async def supervised() -> None:
            # A loop that crashes is restarted after a pause; a dead worker would silently stall the inbox.
            while not self.stop.is_set():
                try:
                    await loop(self, self.stop)
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("background.crashed", loop=name)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stop.wait(), timeout=5)

        self.tasks.append(asyncio.create_task(supervised(), name=name))

    async def idle(self, wakeup: asyncio.Event, timeout: float) -> None:  # noqa: ASYNC109 - a wait budget
        """Sleep until ``timeout``, shutdown, or ``wakeup`` is set (then clear it)."""
        waiters = [asyncio.create_task(self.stop.wait()), asyncio.create_task(wakeup.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            wakeup.clear()

    async def shutdown(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - a grace period
        self.stop.set()
        if self.tasks:
            _done, pending = await asyncio.wait(self.tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self.tasks.clear()


@asynccontextmanager
async def open_runtime(
    settings: ServiceSettings,
    profile: ServiceProfile,
    metrics: Metrics,
    *,
    clockify_transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Runtime]:
    """Build the runtime; ``clockify_transport`` replaces the innermost outbound layer (tests)."""
    async with AsyncExitStack() as stack:
        engine = create_engine(settings.database_url, settings.database)
        stack.push_async_callback(engine.dispose)
        redis_client = None
        if settings.redis.url:
            # Fail fast when Redis is away (redis-py otherwise retries for seconds); every
            # Redis user here has a fallback or reports the outage.
            redis_client = aioredis.from_url(
                settings.redis.url, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
            )
            stack.push_async_callback(redis_client.aclose)
        limiter = create_rate_limiter(settings.rate_limit, redis_client, settings.redis.key_prefix)
        stack.push_async_callback(limiter.aclose)
        clockify = ClockifyClient(settings.http, limiter=limiter, metrics=metrics, transport=clockify_transport,
                                  global_limit=global_limit(settings.rate_limit))
        stack.push_async_callback(clockify.aclose)
        jwks_http = None
        if settings.signing.jwks_url:
            jwks_http = httpx.AsyncClient(timeout=5)
            stack.push_async_callback(jwks_http.aclose)
        verifier = TokenVerifier.from_config(settings.signing, key_provider_from_config(settings.signing, jwks_http))
        if settings.database.run_migrations:
            await upgrade(engine)
        sessions = create_session_factory(engine)
        yield Runtime(
            settings=settings,
            profile=profile,
            metrics=metrics,
            engine=engine,
            sessions=sessions,
            redis=redis_client,
            cipher=TokenCipher(settings.security.encryption_key),
            limiter=limiter,
            clockify=clockify,
            verifier=verifier,
        )
