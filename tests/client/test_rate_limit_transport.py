"""The rate-limit layer: spacing, one token per attempt, per-workspace limits, metrics."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from clockify_core.client import EXT_RATE_LIMIT_KEY, RateLimitTransport
from clockify_core.errors import RateLimited
from clockify_core.ratelimit import InMemoryRateLimiter, Limit

BACKEND = "https://api.clockify.me/api"


class CountingLimiter(InMemoryRateLimiter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asked: list[tuple[str, Limit | None]] = []

    async def try_acquire(self, key: str, *, cost: int = 1, limit: Limit | None = None) -> float:
        self.asked.append((key, limit))
        return await super().try_acquire(key, cost=cost, limit=limit)


def stamping(clock: Any, seen: list[float], status: int = 200) -> Any:
    def clockify(request: httpx.Request) -> httpx.Response:
        seen.append(clock.now)
        return httpx.Response(status, json=[])

    return clockify


async def test_requests_are_spaced_by_the_limiter(
    make_client: Any, clock: Any, sleeper: Any, metric: Any
) -> None:
    seen: list[float] = []
    limiter = InMemoryRateLimiter(Limit(rate=10, burst=2), clock=clock)
    api = make_client(stamping(clock, seen), limiter=limiter).for_workspace(
        "ws1", "tok", backend_url=BACKEND, addon_key="addon"
    )
    for _ in range(5):
        await api.get_json("/v1/workspaces/ws1/projects")
    start = seen[0]
    assert [round(t - start, 6) for t in seen] == [0, 0, 0.1, 0.2, 0.3]
    assert sleeper.calls == [pytest.approx(0.1)] * 3
    assert metric("rate_limit_wait_seconds_count") == 5
    assert metric("rate_limit_wait_seconds_sum") == pytest.approx(0.3)


async def test_each_retry_takes_a_token(make_client: Any, clock: Any, sleeper: Any) -> None:
    answers = [httpx.Response(503), httpx.Response(503), httpx.Response(200, json={})]
    seen: list[float] = []

    def clockify(request: httpx.Request) -> httpx.Response:
        seen.append(clock.now)
        return answers.pop(0)

    limiter = CountingLimiter(Limit(rate=1, burst=1), clock=clock)
    api = make_client(clockify, limiter=limiter, rng=lambda: 0.0).for_workspace(
        "ws1", "tok", backend_url=BACKEND, addon_key="addon"
    )
    await api.get_json("/v1/workspaces/ws1/user")
    # Backoff is 0 (rng=0), so only the limiter spaces the three attempts.
    assert [t - seen[0] for t in seen] == [0, 1.0, 2.0]
    # One token per attempt: three grants, plus the two refusals that made it wait.
    assert [key for key, _ in limiter.asked] == ["addon:ws1"] * 5


async def test_workspaces_have_separate_buckets(make_client: Any, clock: Any, sleeper: Any) -> None:
    seen: list[float] = []
    limiter = CountingLimiter(Limit(rate=1, burst=1), clock=clock)
    client = make_client(stamping(clock, seen), limiter=limiter)
    for wid in ("ws1", "ws2", "ws3"):
        await client.for_workspace(wid, "tok", backend_url=BACKEND, addon_key="addon").get_json(
            "/v1/x"
        )
    assert sleeper.calls == []
    assert [key for key, _ in limiter.asked] == ["addon:ws1", "addon:ws2", "addon:ws3"]


async def test_free_plan_limit_and_max_wait(make_client: Any, clock: Any) -> None:
    seen: list[float] = []
    limiter = CountingLimiter(Limit(rate=50, burst=10), clock=clock)
    free = Limit.per_hour(30)
    api = make_client(stamping(clock, seen), limiter=limiter, rate_limit_max_wait=10).for_workspace(
        "ws-free", "tok", backend_url=BACKEND, addon_key="addon", rate_limit=free
    )
    for _ in range(3):
        await api.get_json("/v1/x")
    with pytest.raises(RateLimited) as caught:
        await api.get_json("/v1/x")
    # A burst of 3, then one request every 3600/27 s: at most 30 in any hour.
    assert caught.value.headers["Retry-After"] == "134"
    assert len(seen) == 3
    assert {limit for _, limit in limiter.asked} == {free}


async def test_unkeyed_requests_pass_unlimited() -> None:
    limiter = CountingLimiter(Limit(rate=1, burst=1))
    transport = RateLimitTransport(httpx.MockTransport(lambda r: httpx.Response(204)), limiter)
    async with httpx.AsyncClient(transport=transport) as http:
        for _ in range(3):
            assert (await http.get("https://api.clockify.me/x")).status_code == 204
        response = await http.get("https://api.clockify.me/x", extensions={EXT_RATE_LIMIT_KEY: "k"})
        assert response.status_code == 204
    assert [key for key, _ in limiter.asked] == ["k"]


async def test_a_small_real_rate_spaces_real_time() -> None:
    import time

    stamps: list[float] = []

    def clockify(request: httpx.Request) -> httpx.Response:
        stamps.append(time.monotonic())
        return httpx.Response(200)

    limiter = InMemoryRateLimiter(Limit(rate=20, burst=1))
    transport = RateLimitTransport(httpx.MockTransport(clockify), limiter)
    async with httpx.AsyncClient(transport=transport) as http:
        for _ in range(4):
            await http.get("https://api.clockify.me/x", extensions={EXT_RATE_LIMIT_KEY: "k"})
    assert stamps[-1] - stamps[0] >= 0.14  # three 50 ms gaps, minus timer slack


async def test_per_call_max_wait_refuses_instead_of_waiting(make_client: Any, clock: Any, sleeper: Any) -> None:
    seen: list[float] = []
    limiter = InMemoryRateLimiter(Limit(rate=1, burst=1), clock=clock)
    api = make_client(stamping(clock, seen), limiter=limiter).for_workspace(
        "ws1", "tok", backend_url=BACKEND, addon_key="addon"
    )
    await api.get_json("/v1/workspaces/ws1/tags", max_wait=0.0)  # the burst token
    with pytest.raises(RateLimited):
        await api.get_json("/v1/workspaces/ws1/tags", max_wait=0.0)
    assert len(seen) == 1
    assert sleeper.calls == []
    await api.get_json("/v1/workspaces/ws1/tags")  # without the cap it waits its turn
    assert len(seen) == 2
    assert sleeper.calls == [pytest.approx(1.0)]
