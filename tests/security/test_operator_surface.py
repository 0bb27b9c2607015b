"""The operator API (``/api/operator/…``) answers only to the configured ``X-API-Key``.

The routes come from the apps themselves, so a new operator route is attacked without
being listed here. Every attempt without the key is a 401 or 403 problem that shows
nothing (no workspace id, no installation), queues no job and changes no row: the key
missing, wrong, a prefix of it, extended, upper-cased, in another header or the query string, and a
genuine owner's user token in its place (an owner is not an operator). With the API
switched off (no key configured) every route is a 403, whatever key is sent.
"""

from __future__ import annotations

import re

import httpx
import pytest

from clockify_core.simulator.testing import in_process_simulator
from clockify_core.testing.addon import installed_addon
from tests.security.support import (
    OPERATOR_KEY,
    SERVICES,
    ServiceUnderTest,
    Stack,
    api_routes,
    assert_problem,
    json_text,
    tiny_config,
    workspace_rows,
)

pytestmark = pytest.mark.postgres
in_session_loop = pytest.mark.asyncio(loop_scope="session")  # the loop the `stack` lives on

PREFIX = "/api/operator/"

# Header sets that must not open the operator API: (name, headers, query string).
ATTEMPTS: dict[str, tuple[dict[str, str], str]] = {
    "no key": ({}, ""),
    "empty key": ({"X-API-Key": ""}, ""),
    "wrong key": ({"X-API-Key": "not-the-operator-key"}, ""),
    "a prefix of the key": ({"X-API-Key": OPERATOR_KEY[:-1]}, ""),
    "the key with a suffix": ({"X-API-Key": OPERATOR_KEY + "x"}, ""),
    "the key upper-cased": ({"X-API-Key": OPERATOR_KEY.upper()}, ""),
    "the key as a bearer token": ({"Authorization": f"Bearer {OPERATOR_KEY}"}, ""),
    "the key in X-Addon-Token": ({"X-Addon-Token": OPERATOR_KEY}, ""),
    "the key in the query string": ({}, f"api_key={OPERATOR_KEY}&x-api-key={OPERATOR_KEY}"),
}


def operator_routes(service: ServiceUnderTest) -> list[tuple[str, str]]:
    return sorted(r for r in api_routes(service.app) if r[1].startswith(PREFIX))


def concrete(path: str, service: ServiceUnderTest) -> str:
    """The route with A's workspace (and a job id that exists) filled in."""
    return re.sub(r"\{(\w+)\}", lambda m: service.a.workspace_id if m.group(1) == "workspace_id" else "1", path)


async def send(client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str]) -> httpx.Response:
    return await client.request(method, url, headers=headers, json={} if method == "POST" else None)


@in_session_loop
@pytest.mark.parametrize("attempt", list(ATTEMPTS))
@pytest.mark.parametrize("service_name", list(SERVICES))
async def test_operator_routes_refuse_everything_but_the_key(service_name: str, attempt: str, stack: Stack) -> None:
    service = stack.services[service_name]
    routes = operator_routes(service)
    assert {("GET", "/api/operator/installations"), ("POST", "/api/operator/workspaces/{workspace_id}/sync"),
            ("GET", "/api/operator/jobs"), ("POST", "/api/operator/dead-letters/replay")} <= set(routes)
    headers, query = ATTEMPTS[attempt]
    before = await workspace_rows(service, service.a.workspace_id)
    for method, path in routes:
        url = concrete(path, service) + (f"?{query}" if query else "")
        response = await send(service.client, method, url, headers)
        problem = assert_problem(response, 401, 403)
        # ``instance`` repeats the caller's own path; nothing else may name the workspace.
        told = json_text({k: v for k, v in problem.items() if k != "instance"})
        assert service.a.workspace_id not in told, (method, path, problem)
        assert 'detail' in problem, (method, path, problem)
    assert await workspace_rows(service, service.a.workspace_id) == before


@in_session_loop
@pytest.mark.parametrize("service_name", list(SERVICES))
async def test_an_owners_user_token_is_not_an_operator_key(service_name: str, stack: Stack) -> None:
    service = stack.services[service_name]
    before = await workspace_rows(service, service.a.workspace_id)
    for method, path in operator_routes(service):
        for headers in (service.a.headers(), {"X-API-Key": service.a.token()}):
            response = await send(service.client, method, concrete(path, service), headers)
            assert_problem(response, 401, 403)
    assert await workspace_rows(service, service.a.workspace_id) == before


@in_session_loop
@pytest.mark.parametrize("service_name", list(SERVICES))
async def test_the_key_opens_the_operator_api(service_name: str, stack: Stack) -> None:
    """The counterpart: the same requests with the key are served (so the refusals above are
    refusals of the key, not of the request)."""
    service = stack.services[service_name]
    key = {"X-API-Key": OPERATOR_KEY}
    listed = await service.client.get("/api/operator/installations", headers=key)
    assert listed.status_code == 200, listed.text
    assert {service.a.workspace_id, service.b.workspace_id} <= {i["workspace_id"] for i in listed.json()}
    status = await service.client.get(concrete("/api/operator/workspaces/{workspace_id}/status", service), headers=key)
    assert status.status_code == 200, status.text
    jobs = await service.client.get("/api/operator/jobs", headers=key)
    assert jobs.status_code == 200, jobs.text


@in_session_loop
async def test_installations_are_listed_a_page_at_a_time(stack: Stack) -> None:
    """A page of one carries a Link to the next; following the links lists every installation once."""
    service = stack.services["clockify_addon"]
    key = {"X-API-Key": OPERATOR_KEY}
    everyone = (await service.client.get("/api/operator/installations", headers=key)).json()
    assert len(everyone) >= 2
    url: str | None = "/api/operator/installations?limit=1"
    seen: list[str] = []
    while url is not None:
        page = await service.client.get(url, headers=key)
        assert page.status_code == 200, page.text
        assert len(page.json()) <= 1
        seen += [i["workspace_id"] for i in page.json()]
        url = page.links.get("next", {}).get("url")
    assert seen == sorted(i["workspace_id"] for i in everyone)
    refused = await service.client.get("/api/operator/installations?limit=0", headers=key)
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")


async def test_without_a_configured_key_the_operator_api_is_off(pg_url: str) -> None:
    """No ``OPERATOR_API_KEY``: every operator route is a 403 saying so, whatever is sent."""
    create_app, settings_cls = SERVICES["clockify_addon"]
    async with in_process_simulator(tiny_config()) as sim, installed_addon(
        sim, create_app, settings_cls, db_url=pg_url
    ) as harness:
        assert harness.settings.security.operator_api_key is None
        routes = sorted(r for r in api_routes(harness.app) if r[1].startswith(PREFIX))
        assert routes
        for method, path in routes:
            url = re.sub(r"\{(\w+)\}", lambda m: harness.workspace_id if m.group(1) == "workspace_id" else "1", path)
            for headers in ({}, {"X-API-Key": OPERATOR_KEY}, {"X-API-Key": ""}):
                response = await send(harness.client, method, url, headers)
                problem = assert_problem(response, 403)
                assert "disabled" in problem["detail"], problem
