"""WorkspaceApi: base URLs per API kind, headers, errors, metrics, the shared client."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from clockify_core.client import ClockifyApiError, ClockifyClient, HostAllowlist, MissingBaseUrl
from clockify_core.config import HttpClientConfig
from clockify_core.errors import PROBLEM_CONTENT_TYPE
from clockify_core.web.problems import install_error_handlers

BACKEND = "https://euc1.clockify.me/api"
REPORTS = "https://euc1.clockify.me/report"
PTO = "https://pto.api.clockify.me"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZGRvbiJ9.c2lnbmF0dXJl"


def echo(seen: list[httpx.Request]) -> Any:
    def clockify(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"url": str(request.url)})

    return clockify


@pytest.mark.parametrize(
    ("api", "path", "expected"),
    [
        (
            "api",
            "/v1/workspaces/ws1/projects",
            "https://euc1.clockify.me/api/v1/workspaces/ws1/projects",
        ),
        (
            "addon",
            "/workspaces/ws1/settings",
            "https://euc1.clockify.me/api/addon/workspaces/ws1/settings",
        ),
        (
            "reports",
            "/v1/workspaces/ws1/reports/detailed",
            "https://euc1.clockify.me/report/v1/workspaces/ws1/reports/detailed",
        ),
        (
            "pto",
            "/v1/workspaces/ws1/balance",
            "https://pto.api.clockify.me/v1/workspaces/ws1/balance",
        ),
    ],
)
async def test_base_url_per_api_kind(make_client: Any, api: str, path: str, expected: str) -> None:
    seen: list[httpx.Request] = []
    ws = make_client(echo(seen)).for_workspace(
        "ws1", TOKEN, backend_url=BACKEND + "/", reports_url=REPORTS, pto_url=PTO, addon_key="addon"
    )
    assert ws.url_for(path, api) == expected
    assert await ws.get_json(path, api=api) == {"url": expected}


async def test_developer_environment_backend(make_client: Any) -> None:
    ws = make_client(echo([])).for_workspace(
        "ws1", TOKEN, backend_url="https://developer.clockify.me/api", addon_key="addon"
    )
    assert (
        ws.url_for("/workspaces/ws1/settings", "addon")
        == "https://developer.clockify.me/api/addon/workspaces/ws1/settings"
    )


async def test_missing_base_url_is_a_clear_error(make_client: Any) -> None:
    seen: list[httpx.Request] = []
    ws = make_client(echo(seen)).for_workspace("ws1", TOKEN, backend_url=BACKEND, addon_key="addon")
    with pytest.raises(MissingBaseUrl, match=r"ws1 has no reports URL \(reportsUrl claim\)"):
        await ws.get_json("/v1/workspaces/ws1/reports/detailed", api="reports")
    with pytest.raises(MissingBaseUrl, match="PTO URL"):
        await ws.request("GET", "/v1/x", api="pto")
    assert seen == []


@pytest.mark.parametrize(
    ("path", "api", "message"),
    [
        ("v1/projects", "api", "absolute"),
        ("//evil.example/v1", "api", "absolute"),
        ("/v1/../../admin", "api", "dot segments"),
        ("/addon/workspaces/ws1/settings", "addon", "after /addon"),
        ("/v1/x", "graphql", "api must be one of"),
    ],
)
async def test_bad_paths_are_refused(make_client: Any, path: str, api: str, message: str) -> None:
    ws = make_client(echo([])).for_workspace("ws1", TOKEN, backend_url=BACKEND, addon_key="addon")
    with pytest.raises(ValueError, match=message):
        ws.url_for(path, api)


async def test_sends_the_token_and_client_headers(make_client: Any) -> None:
    seen: list[httpx.Request] = []
    ws = make_client(echo(seen)).for_workspace("ws1", TOKEN, backend_url=BACKEND, addon_key="addon")
    await ws.request(
        "patch",
        "/workspaces/ws1/settings",
        api="addon",
        json=[{"id": "s", "value": 1}],
        headers={"X-Addon-Token": "other", "X-Trace": "t1"},
        params={"hydrated": "true"},
    )
    request = seen[0]
    assert request.method == "PATCH"
    assert request.headers["X-Addon-Token"] == TOKEN
    assert request.headers["X-Trace"] == "t1"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"] == "clockify-addons/0.1"
    assert request.url.params["hydrated"] == "true"
    assert request.content == b'[{"id":"s","value":1}]'
    assert TOKEN not in repr(ws)


async def test_error_renders_as_problem_json_without_leaking_tokens(make_client: Any) -> None:
    body = {"message": f"Token {TOKEN} is not valid for this workspace", "code": 4003}
    ws = make_client(lambda r: httpx.Response(403, json=body)).for_workspace(
        "ws1", TOKEN, backend_url=BACKEND, addon_key="addon"
    )
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/proxy")
    async def proxy() -> Any:
        return await ws.get_json("/v1/workspaces/ws1/user")

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        response = await http.get("/proxy")
    assert response.status_code == 502
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    problem = response.json()
    assert problem["type"].endswith(":clockify-api-error")
    assert problem["upstream_status"] == 403
    assert "Clockify answered 403 to GET /api/v1/workspaces/ws1/user" in problem["detail"]
    assert TOKEN not in response.text
    assert "[REDACTED]" in problem["detail"]


async def test_204_and_non_json_bodies(make_client: Any) -> None:
    answers = [httpx.Response(204), httpx.Response(200, text="<html>maintenance</html>")]
    ws = make_client(lambda r: answers.pop(0)).for_workspace(
        "ws1", TOKEN, backend_url=BACKEND, addon_key="addon"
    )
    assert await ws.request_json("DELETE", "/v1/workspaces/ws1/projects/p1") is None
    with pytest.raises(ClockifyApiError, match="not JSON"):
        await ws.get_json("/v1/workspaces/ws1/projects")


async def test_metrics_count_calls_and_time_them_by_api(make_client: Any, metric: Any) -> None:
    answers = [httpx.Response(200, json={}), httpx.Response(404), httpx.Response(200, json={})]
    ws = make_client(lambda r: answers.pop(0)).for_workspace(
        "ws1", TOKEN, backend_url=BACKEND, reports_url=REPORTS, addon_key="addon"
    )
    await ws.get_json("/v1/a")
    with pytest.raises(ClockifyApiError):
        await ws.get_json("/v1/b")
    await ws.request_json("POST", "/v1/workspaces/ws1/reports/detailed", api="reports", json={})
    assert metric("api_calls_total", status="200") == 2
    assert metric("api_calls_total", status="404") == 1
    assert metric("clockify_request_duration_seconds_count", api="api") == 2
    assert metric("clockify_request_duration_seconds_count", api="reports") == 1


async def test_one_transport_serves_every_workspace(make_client: Any) -> None:
    seen: list[httpx.Request] = []
    client = make_client(echo(seen))
    apis = [
        client.for_workspace(w, f"tok-{w}", backend_url=BACKEND, addon_key="addon")
        for w in ("w1", "w2")
    ]
    await asyncio.gather(*(api.get_json("/v1/x") for api in apis for _ in range(3)))
    assert len(seen) == 6
    assert {r.headers["X-Addon-Token"] for r in seen} == {"tok-w1", "tok-w2"}


@pytest.fixture
async def keepalive_server() -> AsyncIterator[tuple[int, list[int]]]:
    """A minimal HTTP/1.1 keep-alive server on 127.0.0.1 counting TCP connections."""
    connections: list[int] = []
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        writers.append(writer)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]"
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], connections
    server.close()
    for writer in writers:
        writer.close()
    await server.wait_closed()


async def test_real_pool_reuses_one_connection(keepalive_server: tuple[int, list[int]]) -> None:
    port, connections = keepalive_server
    base = f"http://127.0.0.1:{port}/api"
    client = ClockifyClient(HttpClientConfig(allowed_api_hosts=[f"127.0.0.1:{port}"]))
    assert client.allowlist.allows(base)
    for wid in ("w1", "w2", "w3"):
        api = client.for_workspace(wid, "tok", backend_url=base, addon_key="addon")
        for _ in range(3):
            assert await api.get_json(f"/v1/workspaces/{wid}/projects") == []
    await client.aclose()
    assert len(connections) == 1


async def test_allowlist_comes_from_config() -> None:
    async with ClockifyClient(
        HttpClientConfig(allowed_api_hosts=["clockify.me", "127.0.0.1:8123"])
    ) as client:
        assert isinstance(client.allowlist, HostAllowlist)
        assert client.allowlist.allows("http://127.0.0.1:8123/api")
        assert not client.allowlist.allows("http://127.0.0.1:8124/api")


async def test_a_read_response_is_freed_by_reference_counting(make_client: Any) -> None:
    """httpx ties a response and its stream in a cycle; a large page would wait for the cyclic
    collector. The client breaks it once the body is read, and the body stays readable."""
    body = b"[" + b",".join([b'{"id":"e"}'] * 1000) + b"]"
    ws = make_client(lambda request: httpx.Response(200, content=body)).for_workspace(
        "ws1", TOKEN, backend_url=BACKEND, addon_key="addon")
    gc.collect()
    gc.disable()
    try:
        response = await ws.request("GET", "/v1/workspaces/ws1/projects")
        assert response.content == body
        assert await response.aread() == body
        assert len(response.json()) == 1000
        await response.aclose()
        gone = weakref.ref(response)
        del response
        assert gone() is None
    finally:
        gc.enable()
