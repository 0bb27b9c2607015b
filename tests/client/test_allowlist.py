"""The outbound host allowlist: hosts, subdomains, ports, schemes."""

from __future__ import annotations

import httpx
import pytest

from clockify_core.client import ClockifyClient, HostAllowlist
from clockify_core.config import HttpClientConfig
from clockify_core.errors import ConfigurationError, HostNotAllowed


@pytest.mark.parametrize(
    "url",
    [
        "https://clockify.me/api/v1/user",
        "https://api.clockify.me/api/v1/user",
        "https://euc1.clockify.me/api",
        "https://reports.api.clockify.me/v1",
        "https://API.Clockify.ME./v1",
        "https://api.clockify.me:443/v1",
        "http://api.clockify.me/v1",
        "http://127.0.0.1:8123/api/v1",
        "http://sim.localhost:9000/api",
        "http://[::1]:8080/api",
    ],
)
def test_allowed(url: str) -> None:
    allowlist = HostAllowlist(["clockify.me", "127.0.0.1:8123", "localhost:9000", "[::1]:8080"])
    assert allowlist.allows(url)
    allowlist.check(httpx.URL(url))


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("https://evilclockify.me/v1", "evilclockify.me"),
        ("https://clockify.me.evil.com/v1", "clockify.me.evil.com"),
        ("https://api.clockify.me:8443/v1", "api.clockify.me:8443"),
        ("http://127.0.0.1/api", "127.0.0.1"),
        ("http://127.0.0.1:8124/api", "127.0.0.1:8124"),
        ("http://10.127.0.0.1:8123/api", "10.127.0.0.1:8123"),
        ("http://localhost/api", "localhost"),
        ("http://[::2]:8080/", "[::2]:8080"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254"),
    ],
)
def test_refused_with_the_host_named(url: str, named: str) -> None:
    allowlist = HostAllowlist(["clockify.me", "127.0.0.1:8123", "localhost:9000", "[::1]:8080"])
    assert not allowlist.allows(url)
    with pytest.raises(HostNotAllowed) as caught:
        allowlist.check(url)
    assert named in caught.value.detail
    assert caught.value.to_problem()["host"] == named


@pytest.mark.parametrize(
    "url", ["ftp://api.clockify.me/x", "file:///etc/passwd", "ws://api.clockify.me/", "/v1/user"]
)
def test_only_http_and_https(url: str) -> None:
    with pytest.raises(HostNotAllowed, match="only http and https"):
        HostAllowlist(["clockify.me"]).check(url)


@pytest.mark.parametrize(
    "entry",
    [
        "https://clockify.me",
        "*.clockify.me",
        "clockify.me:http",
        "clockify.me:0",
        "",
        "a@b",
        "[::1]x",
    ],
)
def test_malformed_entries_are_configuration_errors(entry: str) -> None:
    with pytest.raises(ConfigurationError):
        HostAllowlist([entry])


def test_empty_allowlist_refuses_everything() -> None:
    assert not HostAllowlist([]).allows("https://api.clockify.me")


async def test_refused_before_any_network_io() -> None:
    seen: list[httpx.Request] = []

    def clockify(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    client = ClockifyClient(HttpClientConfig(), transport=httpx.MockTransport(clockify))
    with pytest.raises(HostNotAllowed, match=r"evil\.example"):
        await client.http.get("https://evil.example/steal")
    with pytest.raises(HostNotAllowed, match="internal"):
        client.for_workspace("ws", "tok", backend_url="http://internal:8080/api", addon_key="addon")
    with pytest.raises(HostNotAllowed, match="reports"):
        client.for_workspace(
            "ws",
            "tok",
            backend_url="https://api.clockify.me/api",
            reports_url="https://reports.evil.example",
            addon_key="addon",
        )
    assert seen == []
    await client.aclose()
