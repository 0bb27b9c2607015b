"""The Redis token bucket against the real server, and its behaviour when Redis fails."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from clockify_core.ratelimit import Limit, RedisRateLimiter
from clockify_core.ratelimit.redis import LuaScript

pytestmark = pytest.mark.redis


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class TcpProxy:
    """Forwards a local port to Redis; ``stop`` refuses and cuts connections, ``start`` restores."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.close()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in self._writers:
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        self._writers.clear()


@pytest.fixture
async def redis_proxy(redis_server_url: str) -> AsyncIterator[TcpProxy]:
    pool = aioredis.ConnectionPool.from_url(redis_server_url)
    kwargs = pool.connection_kwargs
    await pool.disconnect()
    proxy = TcpProxy(kwargs.get("host", "127.0.0.1"), kwargs.get("port", 6379))
    await proxy.start()
    yield proxy
    if proxy._server is not None and proxy._server.is_serving():
        await proxy.stop()


def make(redis: aioredis.Redis, prefix: str, limit: Limit, **kw: object) -> RedisRateLimiter:
    return RedisRateLimiter(redis, default=limit, key_prefix=prefix, **kw)  # type: ignore[arg-type]


async def test_burst_then_a_wait_of_one_token(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    limiter = make(redis_client, redis_prefix, Limit(rate=1, burst=5))
    assert [await limiter.try_acquire("ws") for _ in range(5)] == [0.0] * 5
    wait = await limiter.try_acquire("ws")
    assert 0.9 < wait <= 1.0


async def test_refill_follows_redis_time(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    limiter = make(redis_client, redis_prefix, Limit(rate=20, burst=2))
    assert await limiter.try_acquire("ws", cost=2) == 0
    wait = await limiter.try_acquire("ws")
    assert 0 < wait <= 0.05
    await asyncio.sleep(wait + 0.01)
    assert await limiter.try_acquire("ws") == 0
    await asyncio.sleep(0.2)  # refills to the burst, not beyond
    assert await limiter.try_acquire("ws", cost=2) == 0
    assert await limiter.try_acquire("ws") > 0


async def test_keys_are_isolated_and_prefixed(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    limiter = make(redis_client, redis_prefix, Limit(rate=1, burst=1))
    assert await limiter.try_acquire("addon:ws-a") == 0
    assert await limiter.try_acquire("addon:ws-a") > 0
    assert await limiter.try_acquire("addon:ws-b") == 0
    other = make(redis_client, redis_prefix + "other:", Limit(rate=1, burst=1))
    assert await other.try_acquire("addon:ws-a") == 0
    keys = sorted([k.decode() async for k in redis_client.scan_iter(match=redis_prefix + "*")])
    assert keys == [
        f"{redis_prefix}other:ratelimit:addon:ws-a",
        f"{redis_prefix}ratelimit:addon:ws-a",
        f"{redis_prefix}ratelimit:addon:ws-b",
    ]


async def test_cost_above_one_and_refusals_take_nothing(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    limiter = make(redis_client, redis_prefix, Limit(rate=0.5, burst=5))
    assert await limiter.try_acquire("ws", cost=3) == 0
    wait = await limiter.try_acquire("ws", cost=3)
    assert 1.9 < wait <= 2.0  # one token short at 0.5 tokens/s
    assert await limiter.try_acquire("ws", cost=2) == 0
    with pytest.raises(ValueError, match="capacity"):
        await limiter.try_acquire("ws", cost=6)


async def test_per_call_limit_and_idle_expiry(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    limiter = make(redis_client, redis_prefix, Limit(rate=50, burst=10))
    hourly = Limit.per_hour(30)
    for _ in range(3):
        assert await limiter.try_acquire("free-ws", limit=hourly) == 0
    assert await limiter.try_acquire("free-ws", limit=hourly) > 100
    assert 400_000 < await redis_client.pttl(limiter.redis_key("free-ws")) <= 401_000
    await limiter.try_acquire("paid-ws")
    assert 0 < await redis_client.pttl(limiter.redis_key("paid-ws")) <= 1200


async def test_script_is_loaded_on_noscript_then_run_by_sha(redis_client: aioredis.Redis) -> None:
    # A fresh source (unique comment) is not cached by the server: the first call gets NOSCRIPT.
    script = LuaScript(f"-- {uuid.uuid4()}\nreturn ARGV[1]")
    assert await redis_client.script_exists(script.sha) == [False]
    assert await script(redis_client, [], ["hello"]) == b"hello"
    assert await redis_client.script_exists(script.sha) == [True]
    assert await script(redis_client, [], ["again"]) == b"again"


async def test_redis_down_falls_back_to_a_local_bucket_and_logs_once() -> None:
    client = aioredis.Redis(host="127.0.0.1", port=closed_port())
    clock = FakeClock()
    limiter = make(client, "unused:", Limit(rate=1, burst=3), clock=clock, timeout=0.3)
    started = time.monotonic()
    with capture_logs() as logs:
        results = [await limiter.try_acquire("ws") for _ in range(4)]
    assert results[:3] == [0.0, 0.0, 0.0]
    assert results[3] == pytest.approx(1.0)
    assert not limiter.redis_available
    events = [e for e in logs if e["event"].startswith("ratelimit.")]
    assert len(events) == 1
    assert events[0]["event"] == "ratelimit.redis_unavailable"
    assert events[0]["log_level"] == "warning"
    assert events[0]["fallback"] == "local"
    # Bounded by the limiter's timeout, whatever the client's own retry policy.
    assert time.monotonic() - started < 2
    await client.aclose()


async def test_redis_down_with_deny_returns_a_wait(redis_client: aioredis.Redis) -> None:
    client = aioredis.Redis(host="127.0.0.1", port=closed_port())
    clock = FakeClock()
    limiter = make(
        client,
        "unused:",
        Limit(rate=50, burst=10),
        fallback="deny",
        clock=clock,
        retry_interval=2.0,
        timeout=0.3,
    )
    assert await limiter.try_acquire("ws") == pytest.approx(2.0)
    clock.now += 0.5
    assert await limiter.try_acquire("ws") == pytest.approx(1.5)
    await client.aclose()


async def test_a_hung_redis_times_out_into_the_fallback() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # accepts in the kernel, never answers
        client = aioredis.Redis(host="127.0.0.1", port=listener.getsockname()[1])
        limiter = make(client, "unused:", Limit(rate=1, burst=1), timeout=0.2)
        started = time.monotonic()
        assert await limiter.try_acquire("ws") == 0
        assert time.monotonic() - started < 1
        assert not limiter.redis_available
        await client.aclose()


async def test_recovers_when_redis_returns(
    redis_proxy: TcpProxy, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    client = aioredis.Redis(host="127.0.0.1", port=redis_proxy.port)
    clock = FakeClock()
    limiter = make(
        client,
        redis_prefix,
        Limit(rate=0.01, burst=2),
        clock=clock,
        retry_interval=5.0,
        timeout=0.3,
    )
    assert await limiter.try_acquire("ws") == 0  # shared bucket: 1 token left
    assert await redis_client.exists(limiter.redis_key("ws")) == 1

    await redis_proxy.stop()
    with capture_logs() as logs:
        assert await limiter.try_acquire("ws") == 0  # local bucket at the same limit
        assert await limiter.try_acquire("ws") == 0
        assert await limiter.try_acquire("ws") > 0
        await redis_proxy.start()
        assert await limiter.try_acquire("ws") > 0  # no probe before retry_interval
        clock.now += 5.0
        assert await limiter.try_acquire("ws") == 0  # probe: the shared bucket's last token
        assert limiter.redis_available
        assert await limiter.try_acquire("ws") > 50  # and it is the shared bucket again
    assert [e["event"] for e in logs] == [
        "ratelimit.redis_unavailable",
        "ratelimit.redis_recovered",
    ]
    await client.aclose()
