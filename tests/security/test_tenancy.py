"""Tenants are isolated: a valid token of workspace B gets nothing of workspace A, on every route.

The routes come from the apps themselves: every route under ``/api/`` of the three services
must have a case here or an exemption with its reason, so a new route cannot be forgotten.
Each case acts as an owner of B (B's own installation of the same add-on, a genuine
token) against A's resources: A's flow, run, inbox event, custom source, explorer history,
Clockify data. Nothing of A may appear in the answer (A's workspace id, the marker string
A's data carries, A's ids that B did not send itself), and every row of A stays as it was.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest

from tests.security.support import (
    SERVICES,
    ServiceUnderTest,
    Stack,
    api_routes,
    json_text,
    workspace_rows,
)

pytestmark = pytest.mark.postgres
in_session_loop = pytest.mark.asyncio(loop_scope="session")  # the loop the `stack` lives on

EXEMPT = {
    ("GET", "/api/explorer/operations"): "lists the bundled Clockify OpenAPI spec: the same for every workspace",
    ("GET", "/api/explorer/operations/{operation_id}"): "one operation of the bundled spec: no workspace data",
}
OPERATOR_PREFIX = "/api/operator/"  # X-API-Key, across workspaces by design: tests/security/test_operator_surface.py


@dataclass(frozen=True)
class Outcome:
    response: httpx.Response
    statuses: tuple[int, ...]
    own: str | None = None  # B's marker, where B's own data is the expected answer


Case = Callable[[ServiceUnderTest, Stack], Awaitable[Outcome]]


def _flow_body(**trigger: object) -> dict[str, object]:
    return {"name": "b's flow", "trigger": {"events": ["NEW_TIME_ENTRY"], **trigger},
            "actions": [{"type": "set_variable", "name": "x", "value": 1}]}


async def status(s: ServiceUnderTest, _: Stack) -> Outcome:
    return Outcome(await s.client.get("/api/status", headers=s.b.headers()), (200,))


async def session(s: ServiceUnderTest, _: Stack) -> Outcome:
    return Outcome(await s.client.get("/api/session", headers=s.b.headers()), (200,))


async def list_flows(s: ServiceUnderTest, _: Stack) -> Outcome:
    return Outcome(await s.client.get("/api/flows", headers=s.b.headers()), (200,), s.b.marker)


async def create_flow(s: ServiceUnderTest, _: Stack) -> Outcome:
    """B's flow cannot listen to A's custom source, nor name A's workspace."""
    bound = await s.client.post("/api/flows", headers=s.b.headers(),
                                json=_flow_body(custom_source=s.a.source_id or "a-source"))
    assert bound.status_code in (403, 422), bound.text
    return Outcome(await s.client.post("/api/flows", headers=s.b.headers(),
                                       json={**_flow_body(), "workspace_id": s.a.workspace_id}), (422,))


async def dry_run_unsaved(s: ServiceUnderTest, _: Stack) -> Outcome:
    return Outcome(await s.client.post("/api/flows/dry-run", headers=s.b.headers(),
                                       json={"flow": _flow_body(), "inbox_event_id": s.a.event_id}), (404,))


async def read_flow(s: ServiceUnderTest, _: Stack) -> Outcome:
    return Outcome(await s.client.get(f"/api/flows/{s.a.flow_id}", headers=s.b.headers()), (404,))


async def update_flow(s: ServiceUnderTest, _: Stack) -> Outcome:
    return Outcome(await s.client.put(f"/api/flows/{s.a.flow_id}", headers=s.b.headers(), json=_flow_body()), (404,))


async def delete_flow(s: ServiceUnderTest, _: Stack) -> Outcome:
    return Outcome(await s.client.delete(f"/api/flows/{s.a.flow_id}", headers=s.b.headers()), (404,))


async def enable_flow(s: ServiceUnderTest, _: Stack) -> Outcome:
    return Outcome(await s.client.post(f"/api/flows/{s.a.flow_id}/enable", headers=s.b.headers()), (404,))


async def disable_flow(s: ServiceUnderTest, _: Stack) -> Outcome:
    return Outcome(await s.client.post(f"/api/flows/{s.a.flow_id}/disable", headers=s.b.headers()), (404,))


async def list_runs(s: ServiceUnderTest, _: Stack) -> Outcome:
    return Outcome(await s.client.get(f"/api/flows/{s.a.flow_id}/runs", headers=s.b.headers()), (404,))


async def read_run(s: ServiceUnderTest, _: Stack) -> Outcome:
    # A's run under B's own flow id: the run id alone must not open it.
    mixed = await s.client.get(f"/api/flows/{s.b.flow_id}/runs/{s.a.run_id}", headers=s.b.headers())
    assert mixed.status_code == 404, mixed.text
    return Outcome(await s.client.get(f"/api/flows/{s.a.flow_id}/runs/{s.a.run_id}", headers=s.b.headers()), (404,))


async def dry_run_flow(s: ServiceUnderTest, _: Stack) -> Outcome:
    # B's own flow against A's stored event: the event id alone must not open it.
    mixed = await s.client.post(f"/api/flows/{s.b.flow_id}/dry-run", headers=s.b.headers(),
                                json={"inbox_event_id": s.a.event_id})
    assert mixed.status_code == 404, mixed.text
    return Outcome(await s.client.post(f"/api/flows/{s.a.flow_id}/dry-run", headers=s.b.headers(),
                                       json={"event": {"type": "NEW_TIME_ENTRY", "body": {}}}), (404,))


async def explorer_execute(s: ServiceUnderTest, stack: Stack) -> Outcome:
    # A's entities by id, through B's installation: Clockify (the simulator) refuses them.
    ws_a = stack.sim.sim.workspace(s.a.workspace_id)
    project = next(iter(ws_a.projects.values()))
    by_id = await s.client.post("/api/explorer/execute", headers=s.b.headers(), json={
        "operationId": "getProject", "pathParams": {"workspaceId": s.b.workspace_id, "projectId": project["id"]}})
    assert by_id.status_code == 200, by_id.text
    assert by_id.json()['status'] in (400, 403, 404), by_id.text
    assert project["name"] not in by_id.text
    return Outcome(await s.client.post("/api/explorer/execute", headers=s.b.headers(), json={
        "operationId": "getTags", "pathParams": {"workspaceId": s.a.workspace_id}}), (403,))


async def explorer_history(s: ServiceUnderTest, _: Stack) -> Outcome:
    response = await s.client.get("/api/explorer/history", headers=s.b.headers())
    assert response.status_code == 200, response.text
    assert response.json(), response.text
    assert all(s.b.workspace_id in row["path"] for row in response.json())
    return Outcome(response, (200,))


async def list_sources(s: ServiceUnderTest, _: Stack) -> Outcome:
    return Outcome(await s.client.get("/api/custom-sources", headers=s.b.headers()), (200,), s.b.marker)


async def create_source(s: ServiceUnderTest, _: Stack) -> Outcome:
    response = await s.client.post("/api/custom-sources", headers=s.b.headers(),
                                   json={"name": "b's other source", "workspace_id": s.a.workspace_id,
                                         "workspaceId": s.a.workspace_id})
    if response.status_code == 201:  # extra members are ignored: the source is B's
        listed = await s.client.get("/api/custom-sources", headers=s.b.headers())
        assert response.json()["id"] in listed.text
        await s.client.delete(f"/api/custom-sources/{response.json()['id']}", headers=s.b.headers())
    return Outcome(response, (201, 422))


async def rotate_source(s: ServiceUnderTest, _: Stack) -> Outcome:
    return Outcome(await s.client.post(f"/api/custom-sources/{s.a.source_id}/rotate", headers=s.b.headers()), (404,))


async def read_source_quota(s: ServiceUnderTest, _: Stack) -> Outcome:
    return Outcome(await s.client.get(f"/api/custom-sources/{s.a.source_id}/quota", headers=s.b.headers()), (404,))


async def set_source_quota(s: ServiceUnderTest, _: Stack) -> Outcome:
    response = await s.client.put(f"/api/custom-sources/{s.a.source_id}/quota", headers=s.b.headers(),
                                  json={"burst": 1})
    own = await s.client.get(f"/api/custom-sources/{s.a.source_id}/quota", headers=s.a.headers())
    assert own.json()["burst"] != 1, "B changed A's quota"
    return Outcome(response, (404,))


async def delete_source(s: ServiceUnderTest, _: Stack) -> Outcome:
    return Outcome(await s.client.delete(f"/api/custom-sources/{s.a.source_id}", headers=s.b.headers()), (404,))


CASES: dict[tuple[str, str], Case] = {
    ("GET", "/api/status"): status,
    ("GET", "/api/session"): session,
    ("GET", "/api/flows"): list_flows,
    ("POST", "/api/flows"): create_flow,
    ("POST", "/api/flows/dry-run"): dry_run_unsaved,
    ("GET", "/api/flows/{flow_id}"): read_flow,
    ("PUT", "/api/flows/{flow_id}"): update_flow,
    ("DELETE", "/api/flows/{flow_id}"): delete_flow,
    ("POST", "/api/flows/{flow_id}/enable"): enable_flow,
    ("POST", "/api/flows/{flow_id}/disable"): disable_flow,
    ("GET", "/api/flows/{flow_id}/runs"): list_runs,
    ("GET", "/api/flows/{flow_id}/runs/{run_id}"): read_run,
    ("POST", "/api/flows/{flow_id}/dry-run"): dry_run_flow,
    ("POST", "/api/explorer/execute"): explorer_execute,
    ("GET", "/api/explorer/history"): explorer_history,
    ("GET", "/api/custom-sources"): list_sources,
    ("POST", "/api/custom-sources"): create_source,
    ("POST", "/api/custom-sources/{source_id}/rotate"): rotate_source,
    ("DELETE", "/api/custom-sources/{source_id}"): delete_source,
    ("GET", "/api/custom-sources/{source_id}/quota"): read_source_quota,
    ("PUT", "/api/custom-sources/{source_id}/quota"): set_source_quota,
}


def _workspace_routes(name: str) -> set[tuple[str, str]]:
    create_app, settings_cls = SERVICES[name]
    routes = api_routes(create_app(settings_cls(), configure_logs=False))
    return {r for r in routes if r[1].startswith("/api/") and not r[1].startswith(OPERATOR_PREFIX)}


ROUTES = {name: _workspace_routes(name) for name in SERVICES}


def test_every_workspace_route_is_covered_or_exempt() -> None:
    served = set().union(*ROUTES.values())
    assert served, "no /api routes found: the enumeration is broken"
    forgotten = served - set(CASES) - set(EXEMPT)
    assert not forgotten, f"routes with neither a cross-tenant case nor an exemption: {sorted(forgotten)}"
    assert not (set(CASES) | set(EXEMPT)) - served, "cases for routes that no longer exist"


@in_session_loop
@pytest.mark.parametrize(("service_name", "route"), [
    pytest.param(name, route, id=f"{name}:{route[0]} {route[1]}")
    for name, routes in ROUTES.items() for route in sorted(routes) if route in CASES
])
async def test_workspace_b_gets_nothing_of_workspace_a(service_name: str, route: tuple[str, str], stack: Stack) -> None:
    service = stack.services[service_name]
    a = service.a
    before = await workspace_rows(service, a.workspace_id)

    outcome = await CASES[route](service, stack)

    response = outcome.response
    assert response.status_code in outcome.statuses, (response.status_code, response.text[:500])
    sent = (str(response.request.url) + response.request.content.decode(errors="replace"))
    secrets = {a.workspace_id, a.marker, a.addon_id, a.flow_id, a.source_id, a.source_secret, str(a.event_id)}
    leaked = {s for s in secrets if s and len(s) > 3 and s not in sent and s in response.text}
    assert not leaked, f"{route}: A's data in B's answer: {leaked}"
    if outcome.own:
        assert outcome.own in response.text, "B's own data is missing: the check would prove nothing"
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
    assert await workspace_rows(service, a.workspace_id) == before, f"{route} changed A's data"


@in_session_loop
async def test_the_same_calls_with_a_token_of_a_see_a(stack: Stack) -> None:
    """The refusals are about the workspace: A's own token opens what B's could not."""
    service = stack.services["universal_webhook"]
    a = service.a
    for path in (f"/api/flows/{a.flow_id}", f"/api/flows/{a.flow_id}/runs/{a.run_id}", "/api/custom-sources"):
        response = await service.client.get(path, headers=a.headers())
        assert response.status_code == 200, (path, response.text)
        assert a.marker in response.text
    dry = await service.client.post(f"/api/flows/{a.flow_id}/dry-run", headers=a.headers(),
                                    json={"inbox_event_id": a.event_id})
    assert dry.status_code == 200, dry.text
    assert dry.json()['matched'], dry.text
    assert json_text(dry.json())
