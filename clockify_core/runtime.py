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
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import redis.asyncio as aioredis
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from clockify_core.config import ServiceSettings
from clockify_core.db import create_engine, create_session_factory
from clockify_core.db.migrate import upgrade
from clockify_core.observability.metrics import Metrics
from clockify_core.security.crypto import TokenCipher
from clockify_core.tiers import ServiceProfile

log = structlog.get_logger(__name__)

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
    instance_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

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

    async def shutdown(self, timeout: float = 10.0) -> None:
        self.stop.set()
        if self.tasks:
            _done, pending = await asyncio.wait(self.tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self.tasks.clear()


@asynccontextmanager
async def open_runtime(settings: ServiceSettings, profile: ServiceProfile, metrics: Metrics) -> AsyncIterator[Runtime]:
    engine = create_engine(settings.database_url, settings.database)
    redis_client = aioredis.from_url(settings.redis.url, socket_timeout=2, socket_connect_timeout=2) if settings.redis.url else None
    try:
        if settings.database.run_migrations:
            await upgrade(engine)
        yield Runtime(
            settings=settings,
            profile=profile,
            metrics=metrics,
            engine=engine,
            sessions=create_session_factory(engine),
            redis=redis_client,
            cipher=TokenCipher(settings.security.encryption_key),
        )
    finally:
        if redis_client is not None:
            await redis_client.aclose()
        await engine.dispose()
