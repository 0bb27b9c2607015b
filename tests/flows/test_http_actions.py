"""`http_request` actions against a real loopback server, and the SSRF guard around them."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import httpx
import pytest

from clockify_core.errors import ConfigurationError
from clockify_core.flows.engine import flow_engine
from clockify_core.flows.network import (
    NetworkPolicy,
    RequestRefused,
    non_public_reason,
    resolve_target,
    system_resolver,
)
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import AddonHarness
from tests.flows.conftest import LoopbackServer, admin, create_flow, new_entry, runs_of, settle


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request_flow(name: str, url: str, **action: Any) -> dict[str, Any]:
    return {"name": name, "trigger": {"events": ["NEW_TIME_ENTRY"]},
            "actions": [{"id": "call", "type": "http_request", "url": url, **action}]}


async def test_ssrf_attempts_fail_the_run_and_reach_nothing(
    uw: AddonHarness, simulator: InProcessSimulator, loopback: LoopbackServer
) -> None:
    closed = _free_port()
    names = {"rebind.test": ["93.184.215.14", "127.0.0.1"], "metadata.test": ["169.254.169.254"],
             "private.test": ["10.20.30.40"], "mapped.test": ["::ffff:127.0.0.1"], "pinned.test": ["127.0.0.1"]}

    async def resolver(host: str, port: int) -> list[str]:
        if host in names:
            return names[host]
        return await system_resolver(host, port)  # localhost, as the machine resolves it

    flow_engine(uw.runtime).resolver = resolver
    redirect = f"{loopback.base}/redirect?to="
    refused = {
        "localhost": f"http://localhost:{closed}/x",
        "rebinding answer": f"http://rebind.test:{closed}/hook",
        "metadata by name": "http://metadata.test/latest/meta-data/",
        "private by name": "http://private.test/admin",
        "mapped loopback": f"http://mapped.test:{loopback.port}/hook",
        "redirect to 127.0.0.1": f"{redirect}http://127.0.0.1:{closed}/",
        "redirect to metadata": f"{redirect}http://169.254.169.254/latest/meta-data/",
        "redirect to 10.x": f"{redirect}http://10.0.0.1/",
        "redirect to localhost": f"{redirect}http://localhost:{closed}/",
        "redirect to a private name": f"{redirect}http://private.test/",
        "redirect to file": f"{redirect}file:///etc/passwd",
    }
    flows = {name: await create_flow(uw, _request_flow(name, url, follow_redirects=True))
             for name, url in refused.items()}
    allowed = await create_flow(uw, _request_flow("pinned name", f"http://pinned.test:{loopback.port}/hook"))
    await new_entry(simulator)
    await settle(uw)
    for name, flow in flows.items():
        [run] = await runs_of(uw, flow["id"])
        assert (run.status, run.attempts) == ("FAILED", 1), (name, run.status, run.error)
        assert "Refusing" in (run.error or ""), (name, run.error)
    # Only the first hop of each redirect reached the (allowlisted) server; nothing else did.
    assert {r.path for r in loopback.requests} == {"/redirect", "/hook"}
    assert [r.path for r in loopback.requests].count("/hook") == 1
    # A name the operator's allowlist covers works, and the connection goes to the checked address.
    [run] = await runs_of(uw, allowed["id"])
    assert run.status == "SUCCEEDED", run.error
    [hook] = [r for r in loopback.requests if r.path == "/hook"]
    assert hook.headers["host"] == f"pinned.test:{loopback.port}"


async def test_literal_non_public_urls_are_refused_when_saved(uw: AddonHarness, loopback: LoopbackServer) -> None:
    for url in (f"http://127.0.0.1:{loopback.port + 1}/", "http://10.1.2.3/", "http://169.254.169.254/latest",
                "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/", "http://192.168.1.1/",
                "http://100.100.100.200/", "http://[fd00:ec2::254]/", "ftp://example.com/", "http://user:pw@example.com/"):
        response = await uw.client.post("/api/flows", json=_request_flow("x", url), headers=admin(uw))
        assert response.status_code == 422, (url, response.text)
        assert response.json()["errors"][0]["location"] == "body.actions.0.url"
    ok = await uw.client.post("/api/flows", json=_request_flow("ok", f"{loopback.base}/hook"), headers=admin(uw))
    assert ok.status_code == 201


async def test_responses_redirects_and_secrets(
    uw: AddonHarness, simulator: InProcessSimulator, loopback: LoopbackServer
) -> None:
    secret = {"X-Api-Key": {"secret": "k-123456789"}}
    big = await create_flow(uw, _request_flow("big", f"{loopback.base}/big"))
    unfollowed = await create_flow(uw, _request_flow("302", f"{loopback.base}/redirect?to=/hook"))
    followed = await create_flow(uw, _request_flow("follow", f"{loopback.base}/redirect?to=/hook", follow_redirects=True,
                                                   method="POST", body={"a": 1}, headers=secret))
    async def other_origin(host: str, port: int) -> list[str]:
        return ["127.0.0.1"] if host == "other.test" else await system_resolver(host, port)

    flow_engine(uw.runtime).resolver = other_origin
    elsewhere = await create_flow(uw, _request_flow(
        "cross-origin", f"{loopback.base}/redirect?to=http://other.test:{loopback.port}/moved", follow_redirects=True,
        headers={**secret, "Authorization": "Basic abc", "X-Plain": "kept"}))
    echoed = await create_flow(uw, _request_flow("echo", f"{loopback.base}/echo", headers=secret, method="PUT",
                                                 body_text="entry={{ $.id }}", save_as="echo"))
    entry = await new_entry(simulator)
    await settle(uw)

    [run] = await runs_of(uw, big["id"])
    assert run.status == "FAILED"
    assert run.attempts == 1
    assert "larger than" in (run.error or "")
    [run] = await runs_of(uw, unfollowed["id"])
    assert run.status == "FAILED"
    assert "302" in (run.error or "")
    assert "follow_redirects" in (run.error or "")
    [run] = await runs_of(uw, followed["id"])
    assert run.status == "SUCCEEDED"
    assert run.actions[0]["response"]["redirects"] == [f"{loopback.base}/hook"]
    redirected = [r for r in loopback.requests if r.path == "/hook"]
    # 302 after a POST becomes a GET without the body; a same-origin hop keeps the headers.
    assert [(r.method, r.body, r.headers.get("x-api-key")) for r in redirected] == [("GET", b"", "k-123456789")]
    [run] = await runs_of(uw, elsewhere["id"])
    assert run.status == "SUCCEEDED"
    [moved] = [r for r in loopback.requests if r.path == "/moved"]
    # Another origin: credentials and secret headers stay behind.
    assert moved.headers["host"] == f"other.test:{loopback.port}"
    assert moved.headers.get("x-plain") == "kept"
    assert "x-api-key" not in moved.headers
    assert "authorization" not in moved.headers
    [run] = await runs_of(uw, echoed["id"])
    assert run.status == "SUCCEEDED"
    [echo] = [r for r in loopback.requests if r.path == "/echo"]
    assert echo.method == "PUT"
    assert echo.body == f"entry={entry['id']}".encode()
    assert echo.headers["content-type"].startswith("text/plain")
    # The server echoed the secret back; the run record masks it everywhere.
    recorded = str(run.actions)
    assert "k-123456789" not in recorded
    assert "********" in recorded


@pytest.mark.parametrize(
    ("address", "public"),
    [("8.8.8.8", True), ("2606:4700:4700::1111", True), ("127.0.0.1", False), ("10.0.0.1", False),
     ("172.16.5.4", False), ("192.168.0.1", False), ("169.254.169.254", False), ("100.64.0.1", False),
     ("0.0.0.0", False),  # noqa: S104 - an address the guard must refuse, not a bind
     ("224.0.0.1", False), ("255.255.255.255", False), ("::1", False), ("::", False),
     ("fe80::1", False), ("fd00:ec2::254", False), ("::ffff:10.0.0.1", False), ("2002:7f00:1::", False),
     ("ff02::1", False), ("198.18.0.1", False),
     # Deprecated site-local, documentation, and v4 addresses embedded in NAT64 and 6to4: the embedded one decides.
     ("fec0::1", False), ("feff::1", False), ("3fff::1", False), ("192.88.99.1", False), ("192.0.0.8", False),
     ("64:ff9b::7f00:1", False), ("64:ff9b::a00:1", False), ("64:ff9b::a9fe:a9fe", False), ("64:ff9b:1::1", False),
     ("64:ff9b::808:808", True), ("2002:c0a8:101::1", False), ("2002:808:808::1", True), ("::ffff:8.8.8.8", True)],
)
def test_non_public_addresses(address: str, public: bool) -> None:
    assert (non_public_reason(ipaddress.ip_address(address)) is None) is public


async def test_policy_allowlist_entries() -> None:
    policy = NetworkPolicy.from_allowlist(["10.0.0.0/8", "127.0.0.1:8080", "intranet.example", "[::1]:9000"])
    ip = ipaddress.ip_address
    assert policy.allows("x", ip("10.9.9.9"), 443)
    assert policy.allows("x", ip("127.0.0.1"), 8080)
    assert not policy.allows("x", ip("127.0.0.1"), 8081)
    assert policy.allows("intranet.example", ip("192.168.1.1"), 1234)
    assert policy.allows("x", ip("::1"), 9000)
    assert not policy.allows("x", ip("::1"), 9001)

    async def two(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "10.0.0.5"]

    target = await resolve_target(httpx.URL("https://a.example/x"), policy, two)
    assert str(target.address) == "93.184.215.14"
    assert target.host == "a.example"
    with pytest.raises(RequestRefused):
        await resolve_target(httpx.URL("https://a.example/x"), NetworkPolicy(), two)
    for bad in ("http://*.example", "a/b", "host:99999"):
        with pytest.raises(ConfigurationError):
            NetworkPolicy.from_allowlist([bad])
