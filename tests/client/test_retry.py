"""Retry policy through the whole stack, with MockTransport as Clockify."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from clockify_core.client import ClockifyApiError, ClockifyClient, RetryPolicy, parse_retry_after

BACKEND = "https://api.clockify.me/api"
ITEMS = "/v1/workspaces/ws1/projects"


def scripted(
    *answers: Any,
) -> tuple[Callable[[httpx.Request], httpx.Response], list[httpx.Request]]:
    """A Clockify that gives ``answers`` in order (a status, a Response or an exception to raise)."""
    seen: list[httpx.Request] = []
    queue = list(answers)

    def clockify(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, int):
            return httpx.Response(answer, json={"ok": answer < 400})
        return answer

    return clockify, seen


def workspace(client: ClockifyClient) -> Any:
    return client.for_workspace("ws1", "token-1", backend_url=BACKEND, addon_key="addon")


async def test_429_honours_retry_after_seconds(make_client: Any, sleeper: Any, metric: Any) -> None:
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": "7"}), 200)
    api = workspace(make_client(handler))
    assert await api.get_json(ITEMS) == {"ok": True}
    assert sleeper.calls == [7.0]
    assert len(seen) == 2
    assert metric("clockify_retries_total", reason="status_429") == 1


async def test_429_honours_retry_after_http_date(
    make_client: Any, sleeper: Any, clock: Any
) -> None:
    when = format_datetime(datetime.fromtimestamp(clock.now + 6, UTC), usegmt=True)
    handler, _ = scripted(httpx.Response(429, headers={"Retry-After": when}), 200)
    await workspace(make_client(handler)).get_json(ITEMS)
    assert sleeper.calls == [pytest.approx(6.0)]


async def test_retry_after_is_capped(make_client: Any, sleeper: Any) -> None:
    handler, _ = scripted(httpx.Response(503, headers={"Retry-After": "3600"}), 200)
    await workspace(make_client(handler)).get_json(ITEMS)
    assert sleeper.calls == [8.0]  # backoff_max of the fixture config


async def test_5xx_storm_backs_off_exponentially_then_succeeds(
    make_client: Any, sleeper: Any, metric: Any
) -> None:
    handler, seen = scripted(503, 502, 504, 503, 200)
    assert await workspace(make_client(handler)).get_json(ITEMS) == {"ok": True}
    assert len(seen) == 5
    # Full jitter pinned at its top (rng=1.0): base 0.5 doubling.
    assert sleeper.calls == [0.5, 1.0, 2.0, 4.0]
    assert metric("clockify_retries_total", reason="status_503") == 2
    assert metric("clockify_retries_total", reason="status_502") == 1
    assert metric("clockify_retries_total", reason="status_504") == 1
    assert metric("api_calls_total", status="503") == 2
    assert metric("api_calls_total", status="200") == 1


async def test_backoff_is_capped_and_jittered() -> None:
    policy = RetryPolicy(max_attempts=10, backoff_base=0.5, backoff_max=8.0)
    assert [policy.backoff(n, lambda: 1.0) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 8, 8]
    assert policy.backoff(3, lambda: 0.25) == 0.5
    assert policy.backoff(10_000, lambda: 1.0) == 8.0


async def test_gives_up_after_max_attempts_with_a_clear_error(
    make_client: Any, sleeper: Any, metric: Any
) -> None:
    handler, seen = scripted(httpx.Response(503, text="Service Unavailable, try later"))
    api = workspace(make_client(handler))
    with pytest.raises(ClockifyApiError) as caught:
        await api.get_json(ITEMS)
    error = caught.value
    assert error.status_code == 503
    assert error.attempts == 5
    assert len(seen) == 5
    assert len(sleeper.calls) == 4
    assert "503" in error.detail
    assert "after 5 attempts" in error.detail
    assert "Service Unavailable" in error.body_excerpt
    assert metric("api_calls_total", status="503") == 5


async def test_post_is_not_retried_on_503(make_client: Any, sleeper: Any) -> None:
    handler, seen = scripted(503, 201)
    api = workspace(make_client(handler))
    response = await api.request("POST", ITEMS, json={"name": "x"})
    assert response.status_code == 503
    assert len(seen) == 1
    assert sleeper.calls == []


async def test_post_is_retried_on_429_with_the_same_body(make_client: Any) -> None:
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": "1"}), 201)
    api = workspace(make_client(handler))
    assert await api.request_json("POST", ITEMS, json={"name": "Alpha"}) == {"ok": True}
    assert [r.method for r in seen] == ["POST", "POST"]
    assert seen[0].content == seen[1].content == b'{"name":"Alpha"}'


async def test_post_is_retried_on_connect_error_only(make_client: Any, metric: Any) -> None:
    handler, seen = scripted(httpx.ConnectError("refused"), 201)
    api = workspace(make_client(handler))
    assert (await api.request("POST", ITEMS, json={})).status_code == 201
    assert len(seen) == 2
    assert metric("clockify_retries_total", reason="connect_error") == 1
    assert metric("api_calls_total", status="error") == 1

    handler, seen = scripted(httpx.ReadTimeout("slow"), 201)
    api = workspace(make_client(handler))
    with pytest.raises(ClockifyApiError) as caught:
        await api.request("POST", ITEMS, json={})
    assert caught.value.status_code is None
    assert "ReadTimeout" in caught.value.detail
    assert len(seen) == 1


async def test_get_is_retried_on_timeouts_and_network_errors(make_client: Any, metric: Any) -> None:
    handler, seen = scripted(
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("dropped"),
        httpx.ReadError("reset"),
        200,
    )
    assert await workspace(make_client(handler)).get_json(ITEMS) == {"ok": True}
    assert len(seen) == 4
    assert metric("clockify_retries_total", reason="timeout") == 1
    assert metric("clockify_retries_total", reason="protocol_error") == 1
    assert metric("clockify_retries_total", reason="network_error") == 1


async def test_per_request_idempotency_override(make_client: Any) -> None:
    handler, seen = scripted(503, 200)
    api = workspace(make_client(handler))
    assert (
        await api.request("POST", ITEMS + "/search", json={}, idempotent=True)
    ).status_code == 200
    assert len(seen) == 2

    handler, seen = scripted(503, 200)
    api = workspace(make_client(handler))
    assert (await api.request("DELETE", ITEMS + "/p1", idempotent=False)).status_code == 503
    assert len(seen) == 1


async def test_unreachable_clockify_raises_after_retries(make_client: Any, sleeper: Any) -> None:
    handler, seen = scripted(httpx.ConnectError("[Errno 111] Connection refused"))
    with pytest.raises(ClockifyApiError) as caught:
        await workspace(make_client(handler)).get_json(ITEMS)
    assert caught.value.status_code is None
    assert caught.value.attempts == 5
    assert (
        "api.clockify.me/api/v1/workspaces/ws1/projects failed after 5 attempts: ConnectError"
        in caught.value.detail
    )
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert len(seen) == 5


async def test_client_errors_are_not_retried(make_client: Any) -> None:
    handler, seen = scripted(
        httpx.Response(404, json={"message": "Project doesn't exist", "code": 501})
    )
    with pytest.raises(ClockifyApiError) as caught:
        await workspace(make_client(handler)).get_json(ITEMS + "/missing")
    assert caught.value.not_found
    assert caught.value.status_code == 404
    assert "Project doesn't exist" in caught.value.detail
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("Thu, 15 Jan 2027 08:00:10 GMT", 10.0),
        ("Thu, 15 Jan 2027 07:59:00 GMT", 0.0),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = datetime(2027, 1, 15, 8, 0, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after(value, now=now) == expected


async def test_429_that_outlasts_the_retries_carries_retry_after(make_client: Any) -> None:
    handler, seen = scripted(
        httpx.Response(429, headers={"Retry-After": "2"}, text="Too many requests")
    )
    with pytest.raises(ClockifyApiError) as caught:
        await workspace(make_client(handler)).get_json(ITEMS)
    assert caught.value.status_code == 429
    assert caught.value.retry_after == 2.0
    assert len(seen) == 5


async def test_invalid_base_url_is_refused(make_client: Any) -> None:
    from clockify_core.errors import HostNotAllowed

    handler, _ = scripted(200)
    with pytest.raises(HostNotAllowed, match="not a valid URL"):
        make_client(handler).for_workspace(
            "ws1", "t", backend_url="https://api.clockify.me:abc/", addon_key="a"
        )


async def test_each_retry_draws_jitter_once_and_numbers_its_attempt(make_client: Any, sleeper: Any) -> None:
    from clockify_core.client import EXT_ATTEMPTS

    draws: list[float] = []

    def rng() -> float:
        draws.append(0.5)
        return 0.5

    numbers: list[int] = []

    def clockify(request: httpx.Request) -> httpx.Response:
        numbers.append(request.extensions[EXT_ATTEMPTS])
        return httpx.Response(503, text="down")

    with pytest.raises(ClockifyApiError) as caught:
        await workspace(make_client(clockify, rng=rng)).get_json(ITEMS)
    assert numbers == [1, 2, 3, 4, 5]
    assert caught.value.attempts == 5
    # Four waits, half of each ceiling; no jitter drawn after the last attempt.
    assert sleeper.calls == [0.25, 0.5, 1.0, 2.0]
    assert len(draws) == 4


async def test_an_error_that_is_not_a_transport_error_is_not_retried(make_client: Any, sleeper: Any) -> None:
    handler, seen = scripted(ValueError("a bug in a layer below"), 200)
    with pytest.raises(ValueError, match="a bug in a layer below"):
        await workspace(make_client(handler)).get_json(ITEMS)
    assert len(seen) == 1
    assert sleeper.calls == []


async def test_a_retried_response_is_closed_before_the_next_attempt(make_client: Any) -> None:
    closed: list[bool] = []

    class Tracked(httpx.AsyncByteStream):
        async def __aiter__(self) -> Any:
            yield b"{}"

        async def aclose(self) -> None:
            closed.append(True)

    handler, seen = scripted(httpx.Response(502, stream=Tracked()), 200)
    assert await workspace(make_client(handler)).get_json(ITEMS) == {"ok": True}
    assert len(seen) == 2
    assert closed == [True]
