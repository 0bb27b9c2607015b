"""Server-side request forgery: flows' `http_request` and the API explorer reach nothing internal.

Flows: every URL of the table is refused when the flow is saved (a literal address, a bad
shape) or when it runs (a name or a spelling that resolves to an internal address, a
redirect to one), and nothing reaches the canary, a real server on 127.0.0.1 that no
allowlist names. The only server flows may call is the suite's recorder (allowlisted as
``127.0.0.1:<its port>``), which here only serves the first hop of each redirect.

Explorer: it takes an operationId, never a URL; the base URL comes from the installation
row, and the client's host allowlist refuses any other host even when that row is poisoned.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import select, update

from clockify_core.client.allowlist import HostAllowlist
from clockify_core.errors import HostNotAllowed
from clockify_core.flows.engine import flow_engine
from clockify_core.flows.models import FlowRun
from clockify_core.flows.network import system_resolver
from clockify_core.installations.models import Installation
from clockify_core.openapi.models import ApiCall
from tests.security.support import Recorder, ServiceUnderTest, Stack, assert_problem

pytestmark = pytest.mark.postgres
in_session_loop = pytest.mark.asyncio(loop_scope="session")

# What the test resolver answers for names (DNS a test cannot rely on).
NAMES = {
    "internal.test": ["10.0.0.1"],
    "metadata.test": ["169.254.169.254"],
    "rebind.test": ["93.184.215.14", "127.0.0.1"],  # one public answer does not save a private one
    "mapped.test": ["::ffff:127.0.0.1"],
    "v6.test": ["::1"],
    "shared.test": ["100.64.0.1"],
    "site-local.test": ["fec0::1"],
    "nat64.test": ["64:ff9b::7f00:1"],
}


def ssrf_table(canary: int, recorder: str) -> dict[str, str]:
    redirect = f"{recorder}/redirect?to="
    return {
        "loopback 127.0.0.1": f"http://127.0.0.1:{canary}/",
        "loopback 127.0.0.2": f"http://127.0.0.2:{canary}/",
        "localhost": f"http://localhost:{canary}/",
        "localhost with a trailing dot": f"http://localhost.:{canary}/",
        "IPv6 loopback ::1": f"http://[::1]:{canary}/",
        "10/8": "http://10.0.0.1/",
        "172.16/12 low": "http://172.16.0.1/",
        "172.16/12 high": "http://172.31.255.254/",
        "192.168/16": "http://192.168.1.1/",
        "cloud metadata 169.254.169.254": "http://169.254.169.254/latest/meta-data/",
        "cloud metadata IPv6 fd00:ec2::254": "http://[fd00:ec2::254]/latest/meta-data/",
        "unspecified 0.0.0.0": f"http://0.0.0.0:{canary}/",
        "unspecified written 0": f"http://0:{canary}/",
        "IPv4-mapped IPv6": f"http://[::ffff:127.0.0.1]:{canary}/",
        "IPv4-mapped IPv6 in hex": f"http://[::ffff:7f00:1]:{canary}/",
        "IPv4-mapped IPv6 long form": f"http://[0:0:0:0:0:ffff:127.0.0.1]:{canary}/",
        "decimal 2130706433": f"http://2130706433:{canary}/",
        "octal 017700000001": f"http://017700000001:{canary}/",
        "octal dotted 0177.0.0.1": f"http://0177.0.0.1:{canary}/",
        "hex 0x7f000001": f"http://0x7f000001:{canary}/",
        "hex dotted 0x7f.0.0.1": f"http://0x7f.0.0.1:{canary}/",
        "short 127.1": f"http://127.1:{canary}/",
        "userinfo evil@127.0.0.1": f"http://evil@127.0.0.1:{canary}/",
        "userinfo allowed-looking host": f"http://127.0.0.1:{canary}@127.0.0.1:{canary}/",
        "userinfo with the recorder as user": f"http://127.0.0.1%3A{canary}@10.0.0.1/",
        "file scheme": "file:///etc/passwd",
        "gopher scheme": f"gopher://127.0.0.1:{canary}/_x",
        "host from the event": "http://{{ $.description }}/x",
        "redirect to 127.0.0.1": f"{redirect}http://127.0.0.1:{canary}/",
        "redirect to localhost": f"{redirect}http://localhost:{canary}/",
        "redirect to ::1": f"{redirect}http://[::1]:{canary}/",
        "redirect to metadata": f"{redirect}http://169.254.169.254/latest/meta-data/",
        "redirect to a private name": f"{redirect}http://internal.test/",
        "redirect to decimal loopback": f"{redirect}http://2130706433:{canary}/",
        "name resolving to 10/8": "http://internal.test/",
        "name resolving to metadata": "http://metadata.test/",
        "name with a rebinding answer": f"http://rebind.test:{canary}/",
        "name resolving to mapped loopback": f"http://mapped.test:{canary}/",
        "name resolving to ::1": f"http://v6.test:{canary}/",
        "name resolving to shared 100.64/10": "http://shared.test/",
        "name resolving to site-local fec0::/10": "http://site-local.test/",
        "name resolving to NAT64 loopback": f"http://nat64.test:{canary}/",
        # The rest of IANA's special-purpose ranges that are not globally reachable.
        "this network 0.0.0.0/8": "http://0.1.2.3/",
        "shared 100.64/10": "http://100.64.0.1/",
        "IETF protocol assignments 192.0.0/24": "http://192.0.0.8/",
        "TEST-NET-1 192.0.2/24": "http://192.0.2.1/",
        "benchmarking 198.18/15": "http://198.19.255.1/",
        "TEST-NET-3 203.0.113/24": "http://203.0.113.7/",
        "reserved 240/4": "http://240.0.0.1/",
        "broadcast": "http://255.255.255.255/",
        "multicast 224/4": "http://224.0.0.251/",
        "6to4 relay anycast 192.88.99/24": "http://192.88.99.1/",
        "unspecified IPv6 ::": f"http://[::]:{canary}/",
        "IPv4-compatible ::127.0.0.1": f"http://[::127.0.0.1]:{canary}/",
        "unique local fc00::/7": "http://[fc00::1]/",
        "link-local IPv6 fe80::/10": "http://[fe80::1]/",
        "site-local IPv6 fec0::/10": "http://[fec0::1]/",
        "documentation 2001:db8::/32": "http://[2001:db8::1]/",
        "documentation 3fff::/20": "http://[3fff::1]/",
        "benchmarking 2001:2::/48": "http://[2001:2::1]/",
        "discard-only 100::/64": "http://[100::1]/",
        "NAT64 of loopback 64:ff9b::/96": f"http://[64:ff9b::7f00:1]:{canary}/",
        "NAT64 of metadata": "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "NAT64 local-use 64:ff9b:1::/48": "http://[64:ff9b:1::a00:1]/",
        "6to4 of loopback 2002::/16": f"http://[2002:7f00:1::1]:{canary}/",
        "6to4 of 192.168/16": "http://[2002:c0a8:101::1]/",
        "Teredo 2001::/32": "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
        "multicast ff02::1": "http://[ff02::1]/",
    }


@asynccontextmanager
async def names_resolved(service: ServiceUnderTest) -> AsyncIterator[None]:
    engine = flow_engine(service.harness.runtime)
    previous = engine.resolver

    async def resolver(host: str, port: int) -> list[str]:
        return NAMES[host] if host in NAMES else await system_resolver(host, port)

    engine.resolver = resolver
    try:
        yield
    finally:
        engine.resolver = previous


@in_session_loop
@pytest.mark.parametrize("service_name", ["universal_webhook", "clockify_addon"])
async def test_flows_reach_nothing_internal(service_name: str, stack: Stack, canary: Recorder) -> None:
    service = stack.services[service_name]
    table = ssrf_table(canary.port, stack.recorder.base)
    hits_before = len(stack.recorder.requests)
    saved: dict[str, str] = {}
    refused_at_save: dict[str, str] = {}
    async with names_resolved(service):
        for name, url in table.items():
            response = await service.client.post("/api/flows", headers=service.a.headers(), json={
                "name": f"ssrf {name}", "trigger": {"events": ["NEW_TIME_ENTRY"]},
                "actions": [{"id": "call", "type": "http_request", "url": url, "follow_redirects": True}]})
            if response.status_code == 201:
                saved[name] = response.json()["id"]
            else:
                problem = assert_problem(response, 422)
                assert problem["errors"][0]["location"] == "body.actions.0.url", (name, problem)
                refused_at_save[name] = problem["errors"][0]["message"]
        try:
            owner = stack.sim.owner_client(stack.sim.sim.workspace(service.a.workspace_id))
            created = await owner.post(f"/api/v1/workspaces/{service.a.workspace_id}/time-entries", json={
                "start": "2025-05-02T08:00:00Z", "end": "2025-05-02T09:00:00Z", "description": "127.0.0.1"})
            assert created.status_code == 201
            await service.settle()
            async with service.harness.runtime.sessions() as session:
                runs = {run.flow_id: run for run in (await session.execute(
                    select(FlowRun).where(FlowRun.flow_id.in_(saved.values())))).scalars()}
        finally:
            for flow_id in saved.values():
                await service.client.delete(f"/api/flows/{flow_id}", headers=service.a.headers())
    for name, flow_id in saved.items():
        run = runs[flow_id]
        assert run.status == "FAILED", (name, run.status, run.actions)
        assert run.error, (name, run.error)
        assert 'Refusing' in run.error, (name, run.error)
    assert set(saved) | set(refused_at_save) == set(table)
    assert canary.requests == [], [r.path for r in canary.requests]
    # Only first hops of redirects, and /hook of the tenant's own flow (populate_tenant).
    assert {r.path for r in stack.recorder.requests[hits_before:]} <= {"/redirect", "/hook"}
    # Both guards did work: literal internal addresses at save, names and redirects at run.
    assert "loopback 127.0.0.1" in refused_at_save
    assert "redirect to 127.0.0.1" in saved
    assert "localhost" in saved


# The explorer ---------------------------------------------------------------------------------


@asynccontextmanager
async def poisoned(service: ServiceUnderTest, **urls: str) -> AsyncIterator[None]:
    """The installation row of B pointing elsewhere (a compromised database, a bad migration)."""
    runtime = service.harness.runtime
    async with runtime.sessions.begin() as session:
        row = await session.get(Installation, service.b.workspace_id)
        assert row is not None
        saved = {name: getattr(row, name) for name in urls}
        await session.execute(update(Installation).where(Installation.workspace_id == service.b.workspace_id)
                              .values(**urls))
    try:
        yield
    finally:
        async with runtime.sessions.begin() as session:
            await session.execute(update(Installation).where(Installation.workspace_id == service.b.workspace_id)
                                  .values(**saved))


@in_session_loop
@pytest.mark.parametrize("target", [
    "http://169.254.169.254/api", "http://127.0.0.1:{canary}/api", "http://[::1]:{canary}/api",
    "http://10.0.0.1/api", "https://clockify.test.evil.example/api", "http://clockify.test:{canary}/api",
    "file:///etc/passwd",
])
async def test_a_poisoned_installation_url_is_refused_by_the_host_allowlist(
    target: str, stack: Stack, canary: Recorder
) -> None:
    service = stack.services["clockify_addon"]
    url = target.format(canary=canary.port)
    sent_before = len(stack.sim.sim.requests)
    async with poisoned(service, backend_url=url, api_url=url):
        response = await service.client.post("/api/explorer/execute", headers=service.b.headers(), json={
            "operationId": "getTags", "pathParams": {"workspaceId": service.b.workspace_id}})
    problem = assert_problem(response, 502)
    assert problem["type"].endswith("host-not-allowed"), problem
    assert canary.requests == []
    assert len(stack.sim.sim.requests) == sent_before  # not even Clockify was called


@in_session_loop
async def test_the_explorer_takes_no_url_and_calls_only_the_installation_base(stack: Stack, canary: Recorder) -> None:
    service = stack.services["clockify_addon"]
    evil = f"http://127.0.0.1:{canary.port}"
    response = await service.client.post("/api/explorer/execute", headers=service.b.headers(), json={
        "operationId": "getTags", "pathParams": {"workspaceId": service.b.workspace_id},
        "url": evil, "baseUrl": evil, "backendUrl": evil, "host": evil, "query": {}})
    assert response.status_code == 200, response.text
    assert response.json()["path"] == f"/v1/workspaces/{service.b.workspace_id}/tags"
    # Parameters are percent-encoded into their own segment or value: no way out of the path.
    for params in ({"projectId": "../../../../x"}, {"projectId": "http://127.0.0.1/"}, {"projectId": "a?b=c#d"}):
        call = await service.client.post("/api/explorer/execute", headers=service.b.headers(), json={
            "operationId": "getProject", "pathParams": {"workspaceId": service.b.workspace_id, **params}})
        assert call.status_code == 200, call.text
        assert call.json()["path"].count("/") == 5, call.json()["path"]
    assert canary.requests == []


@in_session_loop
@pytest.mark.parametrize("segment", ["..", "."])
async def test_a_dot_segment_cannot_move_a_call_to_another_operation(segment: str, stack: Stack) -> None:
    """``..`` as a path parameter would be resolved by the URL library (or Clockify) into the
    parent path: another operation than the one the tier policy checked."""
    service = stack.services["api_studio"]
    async with service.harness.runtime.sessions() as session:
        calls = await session.scalar(select(ApiCall.id).order_by(ApiCall.id.desc()).limit(1))
    sent_before = len(stack.sim.sim.requests)
    response = await service.client.post("/api/explorer/execute", headers=service.b.headers(), json={
        "operationId": "getProject", "pathParams": {"workspaceId": service.b.workspace_id, "projectId": segment}})
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["location"] == "pathParams.projectId", problem
    assert len(stack.sim.sim.requests) == sent_before
    async with service.harness.runtime.sessions() as session:
        assert await session.scalar(select(ApiCall.id).order_by(ApiCall.id.desc()).limit(1)) == calls


def test_host_allowlist_refuses_everything_but_the_configured_hosts() -> None:
    allow = HostAllowlist(["clockify.me", "127.0.0.1:8123"])
    for url in ("https://api.clockify.me/api", "https://clockify.me/", "http://127.0.0.1:8123/api"):
        allow.check(url)
    refused: list[Any] = [
        "http://169.254.169.254/latest", "https://evilclockify.me/", "https://clockify.me.evil.com/",
        "https://clockify.me:8443/", "http://127.0.0.1:8124/", "http://127.0.0.1/", "http://[::1]:8123/",
        "http://2130706433:8123/", "http://localhost:8123/", "file:///etc/passwd", "gopher://clockify.me/",
    ]
    for url in refused:
        with pytest.raises(HostNotAllowed):
            allow.check(url)
