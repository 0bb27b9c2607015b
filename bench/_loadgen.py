"""A lean HTTP/1.1 load generator for loopback benchmarks (run by bench/webhook_ingest.py).

    python bench/_loadgen.py --port 8000 --spec spec.json --mode closed --connections 32 --duration 10
    python bench/_loadgen.py --port 8000 --spec spec.json --mode open --rate 1000 --duration 10

``spec.json``: ``{"path": "/webhooks/x", "headers": [["name", "value"], ...], "body": "...{n}...",
"prefix": "run1-", "start": 0, "cycle": null}``. Every ``{n}`` in the body is replaced by
``prefix + counter``, so each request carries a distinct body; ``cycle`` makes the counter
wrap (``start + i % cycle``) to replay bodies already sent (the duplicate path). With
``"hex": true`` the value is 24 hex characters instead (CRC-32 of the prefix, then the
counter), the shape of a Clockify id, which the receiver requires of entity ids.

* closed: ``connections`` keep-alive connections, each sends its next request when the
  previous answer arrives; the figure is requests per second.
* open: requests are scheduled at a fixed rate whatever the server does; latency is
  measured from the scheduled send time, so a stalled server shows up in the tail
  (no coordinated omission). A request waits for a free connection when all are busy.

Prints one JSON object on stdout. Raw asyncio protocols (uvloop when installed) keep the
generator's own CPU cost far below the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None:
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        length = 0
        if at >= 0:
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : stop if stop >= 0 else len(head)])
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        status = int(head[9:12])
        del self.buffer[:total]
        waiter, self.waiter = self.waiter, None
        if b"\r\nconnection: close" in head:
            self.closed = True
        if not waiter.done():
            waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))

    async def request(self, data: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


class Client:
    def __init__(self, host: str, port: int, spec: dict[str, Any]) -> None:
        self.host, self.port = host, port
        headers = "".join(f"{k}: {v}\r\n" for k, v in spec["headers"])
        self.head = (
            f"POST {spec['path']} HTTP/1.1\r\nhost: {host}:{port}\r\n{headers}"
            "content-type: application/json\r\ncontent-length: "
        ).encode()
        self.parts = [part.encode() for part in spec["body"].split("{n}")]
        self.prefix = str(spec.get("prefix", ""))
        self.start = int(spec.get("start", 0))
        self.cycle = spec.get("cycle")
        self.hex = bool(spec.get("hex"))
        self.tag = f"{zlib.crc32(self.prefix.encode()):08x}"
        self.counter = 0

    def next_request(self) -> bytes:
        i = self.counter
        self.counter += 1
        if self.cycle:
            i %= int(self.cycle)
        value = f"{self.tag}{self.start + i:016x}" if self.hex else f"{self.prefix}{self.start + i}"
        body = value.encode().join(self.parts)
        return b"".join((self.head, str(len(body)).encode(), b"\r\n\r\n", body))

    async def connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(Connection, self.host, self.port)
        return conn

    async def send(self, conn: Connection, data: bytes) -> tuple[Connection, int]:
        """Send on ``conn`` (reconnecting when the server closed it); -1 for a transport error."""
        if conn.closed:
            conn = await self.connect()
        try:
            return conn, await conn.request(data)
        except (ConnectionError, OSError):
            return await self.connect(), -1


class Results:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.total = 0  # every request sent, warm-up included (for CPU per request)
        self.total_ok = 0  # every 2xx, warm-up included (to compare with stored rows)

    def record(self, status: int, latency: float, measured: bool) -> None:
        self.total += 1
        if 200 <= status < 300:
            self.total_ok += 1
        if measured:
            self.statuses[status] += 1
            self.latencies.append(latency)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


async def closed_loop(client: Client, connections: int, duration: float, warmup: float) -> tuple[Results, float]:
    results = Results()
    conns = [await client.connect() for _ in range(connections)]
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + duration

    async def worker(conn: Connection) -> None:
        clock = time.perf_counter
        while (now := clock()) < stop_at:
            conn, status = await client.send(conn, client.next_request())
            done = clock()
            results.record(status, done - now, now >= measure_from)

    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - measure_from
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    return results, elapsed


async def open_loop(
    client: Client, connections: int, duration: float, warmup: float, rate: float
) -> tuple[Results, float]:
    results = Results()
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await client.connect())
    tasks: set[asyncio.Task[None]] = set()
    clock = time.perf_counter

    async def one(scheduled: float, measured: bool) -> None:
        conn = await idle.get()
        conn, status = await client.send(conn, client.next_request())
        results.record(status, clock() - scheduled, measured)
        idle.put_nowait(conn)

    start = clock() + 0.05
    total = int((warmup + duration) * rate)
    first_measured = int(warmup * rate)
    i = 0
    while i < total:
        now = clock()
        due = start + i / rate
        if due > now:
            await asyncio.sleep(due - now)
            continue
        # Dispatch everything that is due: a late wake-up must not thin the offered rate.
        while i < total and start + i / rate <= now:
            task = asyncio.create_task(one(start + i / rate, i >= first_measured))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
    if tasks:
        await asyncio.gather(*tasks)
    elapsed = clock() - (start + first_measured / rate)
    while not idle.empty():
        conn = idle.get_nowait()
        if conn.transport is not None:
            conn.transport.close()
    return results, elapsed


def summary(results: Results, elapsed: float, mode: str) -> dict[str, Any]:
    lat = sorted(results.latencies)
    ok = sum(n for status, n in results.statuses.items() if 200 <= status < 300)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "mode": mode,
        "requests": len(lat),
        "ok": ok,
        "total_sent": results.total,
        "total_ok": results.total_ok,
        "statuses": {str(k): v for k, v in sorted(results.statuses.items())},
        "elapsed": elapsed,
        "rps": len(lat) / elapsed if elapsed > 0 else 0.0,
        "ok_rps": ok / elapsed if elapsed > 0 else 0.0,
        "latency_ms": {
            name: percentile(lat, q) * 1000
            for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999), ("max", 1.0))
        },
        "loadgen_cpu_s": usage.ru_utime + usage.ru_stime,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--mode", choices=["closed", "open"], default="closed")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text())
    client = Client(args.host, args.port, spec)
    run: Callable[[], Any]
    if args.mode == "closed":
        run = lambda: closed_loop(client, args.connections, args.duration, args.warmup)  # noqa: E731
    else:
        run = lambda: open_loop(client, args.connections, args.duration, args.warmup, args.rate)  # noqa: E731
    try:
        import uvloop

        results, elapsed = uvloop.run(run())
    except ImportError:
        results, elapsed = asyncio.run(run())
    json.dump(summary(results, elapsed, args.mode), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
