"""One error tree rendered as RFC 9457 problem details; nothing leaks on a 500."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from clockify_core.errors import PayloadTooLarge, RateLimited, TokenInvalid
from clockify_core.observability.metrics import Metrics
from clockify_core.testing.logs import captured_logs
from clockify_core.web.middleware import RequestContextMiddleware
from clockify_core.web.problems import install_error_handlers


class Thing(BaseModel):
    count: int


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, metrics=Metrics())

    @app.get("/token")
    async def token() -> None:
        raise TokenInvalid("token expired")

    @app.get("/limited")
    async def limited() -> None:
        raise RateLimited("slow down", retry_after=2.2)

    @app.get("/big")
    async def big() -> None:
        raise PayloadTooLarge("body over 5 MB")

    @app.post("/things")
    async def things(thing: Thing) -> Thing:
        return thing

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals: /etc/passwd")

    return app


@pytest.fixture
async def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def test_clockify_error_is_problem_json(client: httpx.AsyncClient) -> None:
    r = await client.get("/token", headers={"X-Request-ID": "req-123"})
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["x-request-id"] == "req-123"
    assert r.json() == {
        "type": "urn:clockify-addons:problem:token-invalid",
        "title": "Token rejected",
        "status": 401,
        "detail": "token expired",
        "instance": "/token",
        "request_id": "req-123",
    }


async def test_retry_after_header_and_member(client: httpx.AsyncClient) -> None:
    r = await client.get("/limited")
    assert r.status_code == 429
    assert r.headers["retry-after"] == "3"
    assert r.json()["retry_after"] == 3


async def test_validation_errors_use_the_same_shape(client: httpx.AsyncClient) -> None:
    r = await client.post("/things", json={"count": "many"})
    assert r.status_code == 422
    body = r.json()
    assert r.headers["content-type"] == "application/problem+json"
    assert body["type"].endswith("validation-failed")
    assert body["errors"][0]["location"] == "body.count"
    assert "body.count" in body["detail"]


async def test_unknown_route_and_method_are_problems(client: httpx.AsyncClient) -> None:
    r = await client.get("/nowhere")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    r = await client.delete("/token")
    assert r.status_code == 405
    assert r.json()["status"] == 405


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """JSON log lines of the test, written to a buffer; the previous logging set-up is restored."""
    with captured_logs() as stream:
        yield stream


async def test_unexpected_exception_is_a_logged_500_without_internals(
    client: httpx.AsyncClient, log_lines: io.StringIO
) -> None:
    r = await client.get("/boom", headers={"X-Request-ID": "req-boom-1"})
    assert r.status_code == 500
    body = r.json()
    assert r.headers["content-type"] == "application/problem+json"
    assert body["request_id"] == r.headers["x-request-id"] == "req-boom-1"
    assert "secret internals" not in r.text
    assert "Traceback" not in r.text
    assert "RuntimeError" not in r.text
    # The operator's side: one line with the request id, the exception type and the trace.
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines() if line.strip()]
    unhandled = [line for line in lines if line.get("event") == "request.unhandled"]
    assert len(unhandled) == 1, lines
    line = unhandled[0]
    assert line["request_id"] == "req-boom-1"
    assert line["error"] == "RuntimeError"
    assert line["path"] == "/boom"
    assert "Traceback" in line["exception"]
    assert "secret internals" in line["exception"]
