"""Metrics under gunicorn: with PROMETHEUS_MULTIPROC_DIR one scrape sums every worker.

A real gunicorn (the gunicorn_conf the images use) with two uvicorn workers: requests
land on both, the scrape shows their sum, gauges are merged without per-process series,
a restart does not add the previous run's samples, and a worker that dies leaves the
counters but not its live gauges.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from clockify_core.testing.processes import ServiceProcess

pytestmark = pytest.mark.slow  # starts gunicorn
ROUTE = {"route": "/healthz", "method": "GET", "status": "200"}


def _file_values(path: Path, metric: str, **labels: str) -> float:
    """One process's value of ``metric`` with ``labels`` (a subset), read from its sample file."""
    total = 0.0
    for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(str(path)):
        name, _sample, sample_labels, _help = json.loads(key)
        if name == metric and labels.items() <= sample_labels.items():
            total += value
    return total


def _per_worker(directory: Path, prefix: str, metric: str, **labels: str) -> dict[int, float]:
    return {int(p.stem.rsplit("_", 1)[1]): _file_values(p, metric, **labels) for p in directory.glob(f"{prefix}_*.db")}


def _parse(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def _value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float | None:
    found = [v for sample_labels, v in samples.get(name, []) if labels.items() <= sample_labels.items()]
    assert len(found) <= 1, (name, labels, samples.get(name))
    return found[0] if found else None


def _hit(url: str, count: int) -> None:
    """``count`` concurrent requests, each on its own connection, so gunicorn's workers share them."""

    def one(_: int) -> int:
        with httpx.Client(timeout=10) as client:
            return client.get(url + "/healthz").status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert set(pool.map(one, range(count))) == {200}


@pytest.fixture
def gunicorn(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[ServiceProcess, Path]]:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    # A previous run's sample file: the master must empty the directory before workers start.
    stale = MmapedDict(str(directory / "counter_999999.db"))
    try:
        key = mmap_key("http_requests", "http_requests_total", list(ROUTE), list(ROUTE.values()), "HTTP requests served")
        stale.write_value(key, 1000.0, 0.0)
    finally:
        stale.close()
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "CLOCKIFY_DB_URL": sqlite_url,
        "CLOCKIFY_RUN_MIGRATIONS": "false",
        "CLOCKIFY_BASE_URL": "http://127.0.0.1",
        "CLOCKIFY_SYNC__TICK_SECONDS": "0.2",
        "CLOCKIFY_SYNC__LEASE_SECONDS": "2",
        "CLOCKIFY_RETENTION__ENABLED": "false",
        "LOG_LEVEL": "WARNING",
    }
    process = ServiceProcess("clockify_addon.main:app", env=env, server="gunicorn", workers=2,
                             log_path=tmp_path / "gunicorn.log", cwd=tmp_path)
    process.start()
    try:
        process.wait_ready()
        yield process, directory
    finally:
        assert process.stop(), process.tail_log()


def test_one_scrape_sums_every_gunicorn_worker(gunicorn: tuple[ServiceProcess, Path]) -> None:
    process, directory = gunicorn
    started = time.time()
    assert not (directory / "counter_999999.db").exists()

    # Until both workers have served some: the kernel hands connections to either.
    sent = 0
    deadline = time.monotonic() + 30
    while True:
        _hit(process.url, 40)
        sent += 40
        served = _per_worker(directory, "counter", "http_requests", **ROUTE)
        if len([n for n in served.values() if n > 0]) == 2:
            break
        assert time.monotonic() < deadline, served
    assert len(served) == 2, served  # two worker processes, and nothing left from the stale run
    assert sum(served.values()) == sent

    # Gauges: one series each, merged by their mode; the scheduler leader is one worker.
    deadline = time.monotonic() + 10
    while _value(samples := _parse(httpx.get(process.url + "/metrics").text), "sync_scheduler_leader") != 1:
        assert time.monotonic() < deadline, samples.get("sync_scheduler_leader")
        time.sleep(0.2)
    assert _value(samples, "http_requests_total", **ROUTE) == sent
    assert _value(samples, "http_request_duration_seconds_count", route="/healthz", method="GET") == sent
    assert _value(samples, "addon_info", service="clockify_addon") == 1
    for name in ("addon_info", "sync_scheduler_leader", "inbox_depth", "addon_start_time_seconds", "addon_uptime_seconds"):
        assert samples.get(name), name
        assert all("pid" not in labels for labels, _ in samples[name]), samples[name]
    uptime = _value(samples, "addon_uptime_seconds")
    assert uptime is not None
    assert 0 < uptime < time.time() - started + 60

    # Kill the leading worker: gunicorn replaces it and forgets its live gauges (child_exit),
    # while its counters stay in the sums. Without child_exit the new leader would make it 2.
    leaders = _per_worker(directory, "gauge_livesum", "sync_scheduler_leader")
    leader = next(pid for pid, value in leaders.items() if value == 1)
    os.kill(leader, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while (directory / f"gauge_livesum_{leader}.db").exists() or len(list(directory.glob("gauge_livesum_*.db"))) < 2:
        assert time.monotonic() < deadline, sorted(p.name for p in directory.iterdir())
        time.sleep(0.2)
    deadline = time.monotonic() + 15
    while True:  # the lease (2 s) runs out and another worker leads
        samples = _parse(httpx.get(process.url + "/metrics").text)
        owners = _per_worker(directory, "gauge_livesum", "sync_scheduler_leader")
        if any(value == 1 for value in owners.values()):
            break
        assert time.monotonic() < deadline, owners
        time.sleep(0.2)
    samples = _parse(httpx.get(process.url + "/metrics").text)
    assert _value(samples, "sync_scheduler_leader") == 1
    assert _value(samples, "http_requests_total", **ROUTE) == sent
    assert (directory / f"counter_{leader}.db").exists()
