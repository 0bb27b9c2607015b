"""Generate 1,000,000 time entries in the simulator, serve deep pages and a report page, report memory.

    .venv/bin/python bench/simulator_memory.py [--entries 1000000]

Prints generation time, RSS (current and peak, from /proc), the entry store's own bytes,
request latencies, and the baseline: the same entries as plain dicts, measured on a
sample and extrapolated.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clockify_core.simulator import DataScale, RateLimitSettings, SimulatorConfig
from clockify_core.simulator.render import time_entry
from clockify_core.simulator.testing import in_process_simulator


def rss_mb() -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def main(entries: int) -> None:
    baseline_rss, _ = rss_mb()
    config = SimulatorConfig(seed=1, anchor=datetime(2025, 6, 2, tzinfo=UTC), public_url="http://clockify.test",
                             rate_limit=RateLimitSettings(enabled=False),
                             scale=DataScale(workspaces=1, users=50, projects=200, time_entries=entries, years=4))
    started = time.perf_counter()
    async with in_process_simulator(config) as sim:
        generated = time.perf_counter() - started
        gc.collect()
        after_rss, peak_rss = rss_mb()
        ws = sim.workspace
        store = ws.entries
        client = sim.owner_client()
        uid = ws.owner_id
        user_total = len(store.by_user[ws.user_ix.get(uid)])
        timings: dict[str, float] = {}

        async def timed(name: str, coro: object) -> None:
            t = time.perf_counter()
            r = await coro  # type: ignore[misc]
            assert r.status_code == 200, r.text
            timings[name] = (time.perf_counter() - t) * 1000

        url = f"/api/v1/workspaces/{ws.id}/user/{uid}/time-entries"
        await timed("first page (50)", client.get(url))
        await timed("page 1 of 5000 hydrated", client.get(url, params={"page-size": 5000, "hydrated": "true"}))
        deep = user_total // 50
        await timed(f"deep page {deep} (50)", client.get(url, params={"page": deep, "page-size": 50}))
        report = f"/reports/v1/workspaces/{ws.id}/reports/detailed"
        body = {"dateRangeStart": "2000-01-01T00:00:00Z", "dateRangeEnd": "2030-01-01T00:00:00Z",
                "detailedFilter": {"page": 1, "pageSize": 1000}}
        await timed("report page 1 (1000, all entries; computes totals)", client.post(report, json=body))
        body["detailedFilter"] = {"page": 500, "pageSize": 1000}
        await timed("report page 500 (1000, cached selection)", client.post(report, json=body))
        body["users"] = {"ids": [uid], "contains": "CONTAINS"}
        body["detailedFilter"] = {"page": 2, "pageSize": 1000}
        await timed("report page 2 filtered by user", client.post(report, json=body))
        _, peak_after = rss_mb()

        # Baseline: the same entries held as API dicts, measured on a sample.
        sample = 20_000
        tracemalloc.start()
        dicts = [time_entry(ws, store.by_start.rows[i]) for i in range(sample)]
        dict_bytes, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del dicts

        print(f"entries generated      {store.rows_total:,} ({len(store):,} live) in {generated:.1f} s")
        print(f"entry store (arrays)   {store.nbytes() / 2**20:.0f} MiB = {store.nbytes() / store.rows_total:.0f} B/entry")
        print(f"process RSS            {baseline_rss:.0f} MiB before, {after_rss:.0f} MiB after generation, peak {max(peak_rss, peak_after):.0f} MiB")
        print(f"as plain dicts         {dict_bytes / sample:.0f} B/entry -> {dict_bytes / sample * store.rows_total / 2**30:.2f} GiB for all (extrapolated from {sample:,})")
        print("target                 < 1 GiB RSS")
        for name, ms in timings.items():
            print(f"{name:<52} {ms:8.1f} ms")
        print(f"max RSS (getrusage)    {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    asyncio.run(main(parser.parse_args().entries))
