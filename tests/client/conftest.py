"""Fixtures for the Clockify client tests: httpx.MockTransport stands for Clockify."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from clockify_core.client import ClockifyClient
from clockify_core.config import HttpClientConfig
from clockify_core.observability.metrics import Metrics

Handler = Callable[[httpx.Request], Any]


class FakeClock:
    """Epoch seconds that only move when a test (or the fake sleep) moves them."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Sleeper:
    """An injected sleep: records each delay and advances the fake clock by it."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.clock.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeper(clock: FakeClock) -> Sleeper:
    return Sleeper(clock)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics("test")


@pytest.fixture
def http_config() -> HttpClientConfig:
    return HttpClientConfig(max_attempts=5, backoff_base=0.5, backoff_max=8.0)


@pytest.fixture
async def make_client(
    sleeper: Sleeper, clock: FakeClock, metrics: Metrics, http_config: HttpClientConfig
) -> AsyncIterator[Callable[..., ClockifyClient]]:
    """Build a client over ``httpx.MockTransport(handler)``; jitter is pinned to its maximum."""
    created: list[ClockifyClient] = []

    def build(handler: Handler, **overrides: Any) -> ClockifyClient:
        kwargs: dict[str, Any] = {
            "metrics": metrics,
            "transport": httpx.MockTransport(handler),
            "sleep": sleeper,
            "clock": clock,
            "rng": lambda: 1.0,
        }
        kwargs.update(overrides)
        config = kwargs.pop("config", http_config)
        client = ClockifyClient(config, **kwargs)
        created.append(client)
        return client

    yield build
    for client in created:
        await client.aclose()


@pytest.fixture
def metric(metrics: Metrics) -> Callable[..., float]:
    """``metric("api_calls_total", status="200")``: a sample of the test's registry (0 if absent)."""

    def read(name: str, **labels: str) -> float:
        value = metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    return read
