"""Oversized and deeply nested JSON on every route that takes a JSON body: refused, never a 500,
always a problem body, and nothing stored.

The routes come from the apps' OpenAPI (every operation with a request body) plus the two
webhook receivers, which read their raw body themselves. Each request carries valid
credentials for its route, so the payload gets as far as it can.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from clockify_core.installations.models import Installation
from clockify_core.security.hmac import signed_headers
from tests.security.support import (
    OPERATOR_KEY,
    SERVICES,
    ServiceUnderTest,
    Stack,
    api_routes,
    assert_problem,
    workspace_rows,
)

pytestmark = pytest.mark.postgres
in_session_loop = pytest.mark.asyncio(loop_scope="session")

# Read their body as bytes (no requestBody in the OpenAPI), so they are listed by hand.
RAW_BODY_ROUTES = {("POST", "/webhooks/{slug}"), ("POST", "/webhooks/custom/{source_id}")}
TARGET = "universal_webhook"  # serves every JSON route the other two serve (checked below)
MEGABYTE = 1024 * 1024


def _json_routes(name: str) -> set[tuple[str, str]]:
    create_app, settings_cls = SERVICES[name]
    app = create_app(settings_cls(), configure_logs=False)
    found = {(method.upper(), path) for path, item in app.openapi()["paths"].items()
             for method, operation in item.items() if "requestBody" in operation}
    return found | (RAW_BODY_ROUTES & api_routes(app))


JSON_ROUTES = {name: _json_routes(name) for name in SERVICES}


def test_every_json_route_of_every_service_is_attacked() -> None:
    others = set().union(*(routes for name, routes in JSON_ROUTES.items() if name != TARGET))
    assert others <= JSON_ROUTES[TARGET], sorted(others - JSON_ROUTES[TARGET])
    assert len(JSON_ROUTES[TARGET]) >= 15


def deep(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


PAYLOADS = {
    # A JSON string of 6 MB: more than any route accepts (webhooks allow 5 MB).
    "oversized": b'{"name": "' + b"x" * (6 * MEGABYTE) + b'", "padding": [' + b"0," * 1000 + b"0]}",
    # Nested far beyond any parser's limit.
    "deeply nested object": deep(100_000),
    "deeply nested array": b"[" * 200_000 + b"]" * 200_000,
}


def _path(service: ServiceUnderTest, template: str) -> str:
    a = service.a
    values = {"flow_id": a.flow_id, "source_id": a.source_id, "workspace_id": a.workspace_id, "slug": "new-time-entry",
              "job_id": "1", "run_id": str(a.run_id)}
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template


def _headers(service: ServiceUnderTest, path: str, body: bytes) -> dict[str, str]:
    a = service.a
    headers = {"Content-Type": "application/json"}
    if path.startswith("/api/operator/"):
        return {**headers, "X-API-Key": OPERATOR_KEY}
    if path.startswith("/api/"):
        return {**headers, **a.headers()}
    if path.startswith("/lifecycle/"):
        return {**headers, "X-Addon-Lifecycle-Token": a.installation.signer.lifecycle_token(a.workspace_id, a.addon_id)}
    if path.startswith("/webhooks/custom/"):
        return {**headers, **signed_headers(a.source_secret, body, int(time.time()))}
    token = next(h.token for h in a.installation.webhooks if h.event == "NEW_TIME_ENTRY")
    return {**headers, "Clockify-Signature": token, "Clockify-Webhook-Event-Type": "NEW_TIME_ENTRY"}


async def _all_rows(service: ServiceUnderTest) -> dict[str, Any]:
    return {t.workspace_id: await workspace_rows(service, t.workspace_id) for t in (service.a, service.b)}


@in_session_loop
@pytest.mark.parametrize("payload", list(PAYLOADS))
@pytest.mark.parametrize("route", sorted(JSON_ROUTES[TARGET]), ids=lambda r: f"{r[0]} {r[1]}")
async def test_oversized_and_deep_json_is_refused_and_stores_nothing(
    route: tuple[str, str], payload: str, stack: Stack
) -> None:
    service = stack.services[TARGET]
    method, template = route
    path, body = _path(service, template), PAYLOADS[payload]
    before = await _all_rows(service)

    response = await service.client.request(method, path, content=body, headers=_headers(service, path, body))

    assert_problem(response, 400, 413, 422)
    if payload == "oversized":
        assert len(response.content) < 10_000, "the refusal echoes the payload"
    assert await _all_rows(service) == before, f"{method} {path} stored something of a refused {payload} body"


def _nested_value(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"v": value}
    return value


@in_session_loop
@pytest.mark.parametrize("depth", [400, 900])
async def test_deep_but_parseable_values_never_cause_a_500(depth: int, stack: Stack) -> None:
    """Nesting a parser accepts still reaches the code behind it: conditions and templates that
    walk the value (``$..``), JSON columns, the dry-run's explanation."""
    service = stack.services[TARGET]
    headers = service.a.headers()
    value = _nested_value(depth)
    flow = {"name": "deep", "trigger": {"events": ["NEW_TIME_ENTRY"]},
            "conditions": {"path": "$..v", "op": "exists"},
            "actions": [{"type": "set_variable", "name": "copy", "value": "{{ $..v }}"}]}
    sent = [
        ("POST", "/api/flows/dry-run", {"flow": flow, "event": {"type": "NEW_TIME_ENTRY", "body": value}}),
        ("POST", "/api/flows", {**flow, "conditions": {"path": "$.a", "op": "eq", "value": value}}),
        ("POST", "/api/explorer/execute", {"operationId": "getTags", "pathParams": {}, "query": {"name": value}}),
    ]
    for method, path, body in sent:
        response = await service.client.request(method, path, content=json.dumps(body), headers=headers)
        assert response.status_code < 500, (path, response.text[:500])
        if response.status_code >= 400:
            assert_problem(response, response.status_code)
    lifecycle = {"X-Addon-Lifecycle-Token": service.b.installation.signer.lifecycle_token(
        service.b.workspace_id, service.b.addon_id)}
    before = await workspace_rows(service, service.b.workspace_id)
    settings = {"workspaceId": service.b.workspace_id, "addonId": service.b.addon_id,
                "settings": [{"id": "flows_enabled", "name": "x", "value": value}]}
    response = await service.client.post("/lifecycle/settings-updated", content=json.dumps(settings), headers=lifecycle)
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400:
        assert_problem(response, response.status_code)
        assert await workspace_rows(service, service.b.workspace_id) == before


@in_session_loop
async def test_a_large_but_acceptable_body_still_works(stack: Stack) -> None:
    """The limits leave room for real traffic: a 1 MB webhook and a 200 KB lifecycle call pass."""
    service = stack.services[TARGET]
    a = service.a
    body = json.dumps({"id": "64f0c0ffee00000000000001", "workspaceId": a.workspace_id,
                       "description": "x" * MEGABYTE}).encode()
    response = await service.client.post("/webhooks/new-time-entry", content=body,
                                         headers=_headers(service, "/webhooks/new-time-entry", body))
    assert response.status_code == 200, response.text[:300]
    async with service.harness.runtime.sessions() as session:
        installation = await session.get(Installation, a.workspace_id)
        assert installation is not None
        current = installation.settings
    big = [*current, {"id": "note", "name": "note", "value": "y" * 200_000}]
    lifecycle = _headers(service, "/lifecycle/settings-updated", b"")
    response = await service.client.post("/lifecycle/settings-updated", headers=lifecycle, json={
        "workspaceId": a.workspace_id, "addonId": a.addon_id, "settings": big})
    assert response.status_code == 200, response.text[:300]
    # A lifecycle token is good for one call: the second call gets its own, as from Clockify.
    lifecycle = _headers(service, "/lifecycle/settings-updated", b"")
    restored = await service.client.post("/lifecycle/settings-updated", headers=lifecycle, json={
        "workspaceId": a.workspace_id, "addonId": a.addon_id, "settings": current})
    assert restored.status_code == 200


@in_session_loop
async def test_a_body_without_content_length_is_cut_off_at_the_limit(stack: Stack) -> None:
    service = stack.services[TARGET]
    limit = service.harness.settings.security.max_body_bytes
    before = await workspace_rows(service, service.a.workspace_id)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "streamed", "trigger": {"events": ["NEW_TIME_ENTRY"]}, "actions": [], "x": "'
        for _ in range(limit // 65536 + 2):
            yield b"z" * 65536
        yield b'"}'

    streamed = await service.client.post("/api/flows", content=chunks(),
                                         headers={**service.a.headers(), "Content-Type": "application/json"})
    assert "content-length" not in streamed.request.headers
    assert assert_problem(streamed, 413)["title"] == "Payload too large"
    # A route that never reads its body refuses a declared oversize too, with the same problem.
    unread = await service.client.post(f"/api/flows/{service.a.flow_id}/disable", content=b"0" * (limit + 1),
                                       headers=service.a.headers())
    assert_problem(unread, 413)
    assert await workspace_rows(service, service.a.workspace_id) == before
