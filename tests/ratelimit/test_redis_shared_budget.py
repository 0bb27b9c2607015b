"""Four processes share one Redis budget and together stay within it."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

pytestmark = [pytest.mark.redis, pytest.mark.slow]

WORKER = Path(__file__).with_name("shared_budget_worker.py")
ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger(__name__)

PROCESSES = 4
RATE = 50.0
BURST = 5
SECONDS = 5.0


async def test_four_processes_share_one_budget(
    redis_server_url: str, redis_prefix: str, redis_client: aioredis.Redis
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    args = [str(WORKER), redis_server_url, redis_prefix, "addon:ws-shared", str(RATE), str(BURST)]
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert await asyncio.wait_for(worker.stdout.readline(), 30) == b"ready\n"
        # Everyone starts together on the wall clock, after all of them are ready.
        start = time.time() + 0.2
        end = start + SECONDS
        outputs = await asyncio.wait_for(
            asyncio.gather(*(w.communicate(f"{start} {end}\n".encode()) for w in workers)),
            SECONDS + 30,
        )
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
    assert [w.returncode for w in workers] == [0] * PROCESSES

    results = [json.loads(stdout) for stdout, _ in outputs]
    per_process = [len(r["grants"]) for r in results]
    # A grant counts when its whole round trip lies inside [start, end]: Redis then took
    # the token inside the window, so the bucket bound applies to the count exactly.
    in_window = sum(
        1 for r in results for sent, received in r["grants"] if sent >= start and received <= end
    )
    ceiling = int(RATE * SECONDS) + BURST
    log.info(
        "shared budget: %d grants in the window (%d in all, per process %s, %d refusals); ceiling %d",
        in_window,
        sum(per_process),
        per_process,
        sum(r["refused"] for r in results),
        ceiling,
    )
    assert in_window <= ceiling
    assert in_window >= 0.9 * ceiling
    assert all(n > 0 for n in per_process), "every process got a share"
