"""How long a hostile flow can stall the event loop: the worst /healthz latency and loop stall.

    .venv/bin/python bench/flow_budget.py [--db sqlite|postgres] [--seconds 5] [--inline]

Runs universal_webhook against the in-process simulator (real app, real database) with
the default budgets (docs/flows.md, "Evaluation budgets") and, for ``--seconds`` each:

1. idle: ``GET /healthz`` every 10 ms, and a ticker that sleeps 5 ms and records how late
   it wakes up (the loop's stall);
2. hostile dry-runs back to back: an unsaved flow with 40 full scans of the body
   (``$..*``, cost 2240, under ``FLOWS__MAX_FLOW_COST``) against a ~900 KiB sample body,
   each ended by ``FLOWS__EVALUATION_BUDGET``, while the same probes run;
3. hostile inbox events: a saved flow with the same scans on a custom source, fed the same body as
   events processed by the inbox worker, while the same probes run.

It prints the worst and the 99th percentile of both probes next to the targets (a stall
of at most ~50 ms, /healthz within 100 ms). ``--inline`` evaluates on the event loop
instead of the engine's thread pool (the behaviour before the budgets) for comparison.

The simulator lives in this process, with millions of objects a service never holds; a
full garbage collection walks them all (~0.7 s here), in whichever thread triggers it. So
after the setup the bench freezes them (``gc.freeze()``) to measure the service's own
pauses; ``--no-freeze`` keeps them, and the stalls then show those collections.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import universal_webhook.app
import universal_webhook.settings
from clockify_core.flows.engine import FlowEngine, flow_engine
from clockify_core.security.hmac import signed_headers
from clockify_core.simulator import RateLimitSettings
from clockify_core.simulator.testing import in_process_simulator, small_config
from clockify_core.testing.addon import AddonHarness, installed_addon
from clockify_core.testing.databases import (
    create_database,
    create_migrated_sqlite,
    drop_database,
    test_database_url,
)
from clockify_core.webhooks.worker import process_batch

STALL_TARGET_MS = 50
HEALTHZ_TARGET_MS = 100
SCANS = [{"path": "$..*", "op": "eq", "value": "never"} for _ in range(40)]


def big_body(items: int = 7000) -> dict[str, Any]:
    """About 900 KiB of JSON, ~75,000 nodes (a dry-run request is at most 1 MiB)."""
    return {"kind": "bulk", "items": [{"id": str(i), "name": "n" * 50, "tags": [{"id": "t", "name": "x"}], "n": i,
                                       "ok": True} for i in range(items)]}


async def probe(addon: AddonHarness, seconds: float, load: Callable[[asyncio.Event], Coroutine[Any, Any, int]]) -> dict[str, Any]:
    stop = asyncio.Event()
    stalls: list[float] = []
    healthz: list[float] = []

    async def ticker() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            stalls.append((time.perf_counter() - started - 0.005) * 1000)

    async def health() -> None:
        # Latency from when the probe was due, so a stalled loop that delays the request counts.
        due = time.perf_counter()
        while not stop.is_set():
            due = max(due + 0.01, time.perf_counter() - 0.5)
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            response = await addon.client.get("/healthz")
            assert response.status_code == 200
            healthz.append((time.perf_counter() - due) * 1000)

    tasks = [asyncio.create_task(ticker()), asyncio.create_task(health())]
    loaded = asyncio.create_task(load(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    done = await loaded
    return {"stalls": stalls, "healthz": healthz, "done": done}


def quantile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return (values or [0.0])[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def report(title: str, result: dict[str, Any], unit: str) -> None:
    stalls, healthz = result["stalls"], result["healthz"]
    worst_stall, worst_health = max(stalls, default=0.0), max(healthz, default=0.0)
    print(f"{title}: {result['done']} {unit}")
    print(f"  loop stall   worst {worst_stall:8.1f} ms  p99 {quantile(stalls, 0.99):7.1f} ms  "
          f"(target <= {STALL_TARGET_MS} ms: {'ok' if worst_stall <= STALL_TARGET_MS else 'OVER'})")
    print(f"  /healthz     worst {worst_health:8.1f} ms  p99 {quantile(healthz, 0.99):7.1f} ms  "
          f"(target <= {HEALTHZ_TARGET_MS} ms: {'ok' if worst_health <= HEALTHZ_TARGET_MS else 'OVER'}), "
          f"{len(healthz)} requests")


async def bench(addon: AddonHarness, seconds: float) -> None:
    admin = {"X-Addon-Token": addon.user_token(role="OWNER")}
    body = big_body()
    print(f"sample body {len(json.dumps(body)) / 1024:,.0f} KiB\n")

    async def idle(stop: asyncio.Event) -> int:
        await stop.wait()
        return 0

    async def dry_runs(stop: asyncio.Event) -> int:
        count = 0
        flow = {"name": "hostile", "trigger": {"events": ["NEW_TIME_ENTRY"]}, "conditions": {"all": SCANS}}
        # Encoded once: the client shares the loop, its own JSON encoding is not the service's.
        request = json.dumps({"flow": flow, "event": {"type": "NEW_TIME_ENTRY", "body": body}}).encode()
        while not stop.is_set():
            response = await addon.client.post("/api/flows/dry-run", content=request,
                                               headers={**admin, "Content-Type": "application/json"})
            assert response.status_code == 200, response.text[:300]
            count += 1
        return count

    created = await addon.client.post("/api/custom-sources", json={"name": "bulk"}, headers=admin)
    source = created.json()
    flow = await addon.client.post("/api/flows", headers=admin, json={
        "name": "hostile", "trigger": {"custom_source": source["id"]}, "conditions": {"all": SCANS},
        "max_runs_per_minute": 100_000})
    assert flow.status_code == 201, flow.text
    raw = json.dumps(body).encode()

    async def inbox(stop: asyncio.Event) -> int:
        count = 0
        while not stop.is_set():
            headers = {**signed_headers(source["secret"], raw, int(time.time())), "X-Event-Type": "bulk",
                       "Content-Type": "application/json"}
            response = await addon.client.post(f"/webhooks/custom/{source['id']}", content=raw, headers=headers)
            assert response.status_code == 200, response.text[:300]
            count += await process_batch(addon.runtime)
            # A failing flow is disabled after FLOWS__FAILURE_THRESHOLD runs: switch it back on.
            await addon.client.post(f"/api/flows/{flow.json()['id']}/enable", headers=admin)
        return count

    report("1. idle", await probe(addon, seconds, idle), "events")
    report("2. hostile dry-runs", await probe(addon, seconds, dry_runs), "dry-runs ended by the budget")
    report("3. hostile inbox events", await probe(addon, seconds, inbox), "events evaluated")


def run_inline(engine: FlowEngine) -> None:
    """Evaluate on the event loop, as before the budgets were off-loaded."""
    async def inline(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)
    engine.offload = inline  # type: ignore[method-assign]


async def main(db: str, seconds: float, inline: bool, freeze: bool) -> None:
    config = small_config(rate_limit=RateLimitSettings(enabled=False))
    with tempfile.TemporaryDirectory() as tmp:
        url = await create_database(test_database_url()) if db == "postgres" else await create_migrated_sqlite(
            Path(tmp) / "bench.db")
        try:
            async with in_process_simulator(config) as sim, installed_addon(
                sim, universal_webhook.app.create_app, universal_webhook.settings.Settings, db_url=url,
                mirror={"refetch": "never"}, logging={"level": "ERROR"},
                webhooks={"custom_bytes_per_minute": 1024**3},  # the source's byte quota is not under test
            ) as addon:
                await sim.drain()
                if inline:
                    run_inline(flow_engine(addon.runtime))
                if freeze:
                    gc.collect()
                    gc.freeze()
                print(f"universal_webhook on {db}, {seconds:g} s per scenario, "
                      f"evaluation {'INLINE on the loop' if inline else 'in the engine thread pool'}, "
                      f"setup heap {'frozen' if freeze else 'NOT frozen'} ({gc.get_freeze_count():,} objects frozen)")
                await bench(addon, seconds)
        finally:
            if db == "postgres":
                await drop_database(url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--inline", action="store_true")
    parser.add_argument("--no-freeze", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.db, args.seconds, args.inline, not args.no_freeze))
