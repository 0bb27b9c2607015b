"""One process of the shared-budget test (run by path, not collected by pytest).

argv: redis_url key_prefix key rate burst. Connects and loads the script, prints
``ready``, reads ``<start> <end>`` (wall-clock seconds) from stdin, then takes tokens as
fast as the limiter allows from ``start`` until ``end``. It prints one JSON object: every
grant as ``[sent, received]`` wall-clock times around the Redis call, and the number of
refusals.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import redis.asyncio as aioredis

from clockify_core.ratelimit import Limit, RedisRateLimiter


async def main(url: str, prefix: str, key: str, rate: float, burst: int) -> None:
    client = aioredis.from_url(url)
    limiter = RedisRateLimiter(client, default=Limit(rate, burst), key_prefix=prefix, timeout=2.0)
    # Warm up the connection and the script cache on a key the test does not count.
    await limiter.try_acquire(key + ":warmup")
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    line = await asyncio.to_thread(sys.stdin.readline)
    start, end = (float(part) for part in line.split())
    await asyncio.sleep(max(0.0, start - time.time()))
    grants: list[tuple[float, float]] = []
    refused = 0
    while (sent := time.time()) < end:
        wait = await limiter.try_acquire(key)
        received = time.time()
        if wait == 0:
            grants.append((sent, received))
        else:
            refused += 1
            await asyncio.sleep(min(wait, max(0.0, end - received)))
    if not limiter.redis_available:
        raise SystemExit("Redis failed during the run; the counts would not be shared")
    await client.aclose()
    sys.stdout.write(json.dumps({"grants": grants, "refused": refused}) + "\n")


if __name__ == "__main__":
    url, prefix, key, rate, burst = sys.argv[1:6]
    asyncio.run(main(url, prefix, key, float(rate), int(burst)))
