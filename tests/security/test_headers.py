"""Header injection: nothing a caller or an event sends can add a header to a request or answer.

* Flows: a header name or value with CR/LF is refused when the flow is saved (422 naming
  the header); a value that renders CR/LF from event data fails the run with a clear error
  and sends nothing, so the server behind the flow never sees an injected header.
* The explorer: CR/LF in path and query parameters is percent-encoded into its own place.
* Our answers: an ``X-Request-ID`` that is not a plain token is replaced by our own, and an
  encoded CR/LF in the path never becomes a header of the answer.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from clockify_core.flows.models import FlowRun, RunStatus
from tests.security.support import ServiceUnderTest, Stack, assert_problem

pytestmark = pytest.mark.postgres
in_session_loop = pytest.mark.asyncio(loop_scope="session")  # the loop the `stack` lives on

INJECTION = "ok\r\nX-Injected: yes"
SERVICE = "universal_webhook"  # the tier with HTTP actions


def _http_flow(url: str, headers: dict[str, object]) -> dict[str, object]:
    return {"name": "header test", "trigger": {"events": ["NEW_TIME_ENTRY"]},
            "actions": [{"id": "call", "type": "http_request", "method": "POST", "url": url, "headers": headers}]}


@in_session_loop
@pytest.mark.parametrize(("name", "value"), [
    ("X-Note", INJECTION),
    ("X-Note", "ok\nX-Injected: yes"),
    ("X-Note", "nul\x00byte"),
    ("X-Note\r\nX-Injected", "yes"),
    ("X Note", "space in the name"),
    ("X-Note", {"secret": INJECTION}),
    ("Host", "evil.example"),
    ("Transfer-Encoding", "chunked"),
])
async def test_a_flow_cannot_be_saved_with_an_injecting_header(name: str, value: object, stack: Stack) -> None:
    service = stack.services[SERVICE]
    response = await service.client.post("/api/flows", headers=service.b.headers(),
                                          json=_http_flow(f"{stack.recorder.base}/hook", {name: value}))
    problem = assert_problem(response, 422)
    assert "header" in response.text.lower(), problem
    assert "X-Injected" not in str(response.headers)


@in_session_loop
async def test_a_header_rendered_from_event_data_cannot_inject(stack: Stack) -> None:
    """The description of a time entry is the attacker's text; the flow copies it into a header."""
    service = stack.services[SERVICE]
    tenant = service.b
    created = await service.client.post("/api/flows", headers=tenant.headers(), json=_http_flow(
        f"{stack.recorder.base}/injected", {"X-Note": "{{ $.description }}"}))
    assert created.status_code == 201, created.text
    flow_id = created.json()["id"]
    try:
        ws = stack.sim.sim.workspace(tenant.workspace_id)
        owner = stack.sim.client(api_key=ws.api_keys[ws.owner_id])
        entry = await owner.post(f"/api/v1/workspaces/{ws.id}/time-entries", json={
            "start": "2025-05-02T08:00:00Z", "end": "2025-05-02T09:00:00Z", "description": INJECTION})
        assert entry.status_code == 201, entry.text
        await service.settle()
        async with service.harness.runtime.sessions() as session:
            runs = (await session.execute(select(FlowRun).where(FlowRun.flow_id == flow_id))).scalars().all()
        # Other entries of B may also have reached the new flow; the injecting one failed.
        failed = [r for r in runs if r.status == RunStatus.FAILED]
        assert len(failed) == 1, [(r.status, r.error) for r in runs]
        assert failed[0].error is not None, failed[0].error
        assert 'control character' in failed[0].error, failed[0].error
        sent = [r for r in stack.recorder.requests if r.path == "/injected"]
        assert len(sent) == len(runs) - 1
        assert not [r for r in stack.recorder.requests if "x-injected" in r.headers]
        assert not [r for r in sent if r.headers.get("x-note") == "ok"]
    finally:
        deleted = await service.client.delete(f"/api/flows/{flow_id}", headers=tenant.headers())
        assert deleted.status_code == 204, deleted.text


async def _explore(service: ServiceUnderTest, **params: object) -> dict[str, object]:
    response = await service.client.post("/api/explorer/execute", headers=service.b.headers(), json={
        "operationId": "getProject", "pathParams": {"workspaceId": service.b.workspace_id, **params}})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


@in_session_loop
async def test_explorer_parameters_stay_in_their_place(stack: Stack) -> None:
    service = stack.services[SERVICE]
    call = await _explore(service, projectId=INJECTION)
    path = str(call["path"])
    assert '%0D%0A' in path, path
    assert '\r' not in path, path
    assert '\n' not in path, path
    assert path.count("/") == 5, path
    # Clockify (the simulator) got one request for one project whose id holds the text.
    [sent] = [r for r in stack.sim.sim.requests if f"/workspaces/{service.b.workspace_id}/projects/" in r.path
              and "X-Injected" in r.path]
    assert sent.path.endswith('X-Injected: yes'), sent
    assert sent.method == 'GET', sent
    query = await service.client.post("/api/explorer/execute", headers=service.b.headers(), json={
        "operationId": "getTags", "pathParams": {"workspaceId": service.b.workspace_id}, "query": {"name": INJECTION}})
    assert query.status_code == 200, query.text


@in_session_loop
@pytest.mark.parametrize("incoming", ["<script>alert(1)</script>", "a b", "x" * 200, "id;Set-Cookie=x", "ä-unicode"])
async def test_an_unsafe_request_id_is_replaced(incoming: str, stack: Stack) -> None:
    service = stack.services[SERVICE]
    response = await service.client.get("/healthz", headers={"X-Request-ID": incoming.encode()})
    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"]), response.headers
    echoed = await service.client.get("/healthz", headers={"X-Request-ID": "trace-42.a:b"})
    assert echoed.headers["x-request-id"] == "trace-42.a:b"


@in_session_loop
async def test_an_encoded_crlf_in_the_path_never_becomes_a_header(stack: Stack) -> None:
    service = stack.services[SERVICE]
    for path in ("/api/flows/%0d%0aSet-Cookie:%20a=b", "/nowhere%0d%0aX-Injected:%20yes",
                 "/webhooks/%0d%0aX-Injected:%20yes"):
        response = await service.client.get(path, headers=service.b.headers())
        assert 400 <= response.status_code < 500, (path, response.status_code)
        assert "set-cookie" not in response.headers
        assert "x-injected" not in response.headers
        for name, value in response.headers.items():
            assert "\r" not in name + value
            assert "\n" not in name + value
