"""Outbound requests of ``http_request`` actions, behind an SSRF guard.

Every hop goes through :func:`resolve_target`: the URL must be http(s) without
credentials; its host is resolved once, and every address it resolves to must be
public (not loopback, private, link-local (cloud metadata at 169.254.169.254), shared,
reserved, site-local, documentation, unspecified or multicast, also when hidden in an
IPv4-mapped, 6to4 or NAT64 address) unless the operator allowlist (``FLOWS__HTTP_ALLOWLIST``) names the host,
the address or a network holding it. The connection then goes to the checked
address itself (the URL's host is only sent as ``Host`` and TLS SNI), so a second DNS
answer cannot swap the target. Redirects are followed only when the action asks, at
most ``max_redirects`` hops, each checked the same way. Bodies are read up to
``max_bytes`` (after decompression); a longer one fails the request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin

import httpx

from clockify_core.errors import ConfigurationError, HostNotAllowed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Headers that must not follow a redirect to another origin.
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone id
        if address not in seen:
            seen.append(address)
    return seen


class RequestRefused(HostNotAllowed):
    """The SSRF guard refused a URL or an address."""


class ResponseTooLarge(Exception):
    pass


# The NAT64 well-known prefix (RFC 6052): the last 32 bits are the IPv4 address a NAT64
# gateway connects to, so that address decides.
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
# Special-purpose ranges (IANA's registries) that Python's is_private/is_global miss.
NOT_GLOBAL: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (ipaddress.IPv6Network("fec0::/10"), "site-local (deprecated, RFC 3879)"),
    (ipaddress.IPv6Network("3fff::/20"), "documentation (RFC 9637)"),
    (ipaddress.IPv4Network("192.88.99.0/24"), "6to4 relay anycast (deprecated, RFC 7526)"),
    # Python leaves parts of it public (192.0.0.8, the dummy address); none of it is a flow's target.
    (ipaddress.IPv4Network("192.0.0.0/24"), "an IETF protocol assignment (RFC 6890)"),
)


def non_public_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        nat64 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in NAT64_PREFIX else None
        for embedded in (address.ipv4_mapped, address.sixtofour, nat64):
            if embedded is not None:
                reason = non_public_reason(embedded)
                return f"{reason} (it embeds {embedded})" if reason else None
        if address.teredo is not None:
            return "a Teredo tunnel address"
    for network, why in NOT_GLOBAL:
        if address.version == network.version and address in network:
            return why
    checks = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local (cloud metadata lives here)"),
        (address.is_multicast, "multicast"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        (not address.is_global, "not globally routable"),
    )
    for flagged, reason in checks:
        if flagged:
            return reason
    return None


@dataclass(frozen=True, slots=True)
class _Entry:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    host: str | None
    port: int | None

    def allows(self, host: str, address: IPAddress, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return address in self.network
        return host == self.host


@dataclass(frozen=True)
class NetworkPolicy:
    """The operator's allowlist: ``host``, ``host:port``, an IP (``10.0.0.5``,
    ``[::1]:8080``) or a CIDR network (``10.0.0.0/8``)."""

    entries: tuple[_Entry, ...] = field(default=())

    @classmethod
    def from_allowlist(cls, items: Iterable[str]) -> NetworkPolicy:
        return cls(tuple(_parse(item) for item in items if item.strip()))

    def allows(self, host: str, address: IPAddress, port: int) -> bool:
        return any(entry.allows(host, address, port) for entry in self.entries)

    def check_address(self, host: str, address: IPAddress, port: int) -> None:
        reason = non_public_reason(address)
        if reason is not None and not self.allows(host, address, port):
            shown = host if host == str(address) else f"{host} ({address})"
            raise RequestRefused(
                f"Refusing to call {shown}: the address is {reason}; an operator can allow it "
                "in FLOWS__HTTP_ALLOWLIST", host=host,
            )


def _parse(raw: str) -> _Entry:
    text = raw.strip().lower()
    port: int | None = None
    try:
        return _Entry(ipaddress.ip_network(text, strict=False), None, None)
    except ValueError:
        pass
    if text.startswith("["):
        inner, _, rest = text[1:].partition("]")
        text, port = inner, _port(raw, rest[1:]) if rest.startswith(":") else None
        if rest and port is None:
            raise ConfigurationError(f"http allowlist entry {raw!r} is not [IPv6]:port")
    elif text.count(":") == 1:
        text, _, port_text = text.partition(":")
        port = _port(raw, port_text)
    try:
        return _Entry(ipaddress.ip_network(text), None, port)
    except ValueError:
        pass
    if not text or "/" in text or "*" in text or "@" in text:
        raise ConfigurationError(f"http allowlist entry {raw!r} must be a host, host:port, IP or CIDR network")
    return _Entry(None, text.rstrip("."), port)


def _port(raw: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigurationError(f"http allowlist entry {raw!r} has an invalid port")
    return int(text)


@dataclass(frozen=True, slots=True)
class Target:
    url: httpx.URL
    host: str
    port: int
    address: IPAddress


def check_url_shape(url: httpx.URL) -> tuple[str, int]:
    """The host and port of an http(s) URL without credentials; RequestRefused otherwise."""
    if url.scheme not in ("http", "https"):
        raise RequestRefused(f"Refusing a {url.scheme or 'relative'} URL: only http and https are allowed")
    if url.userinfo:
        raise RequestRefused("Refusing a URL with credentials in it; send them in a secret header")
    host = url.raw_host.decode("ascii").lower().rstrip(".")  # IDNA form: what DNS and SNI see
    if not host:
        raise RequestRefused("Refusing a URL without a host")
    port = url.port or (443 if url.scheme == "https" else 80)
    return host, port


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def resolve_target(url: httpx.URL, policy: NetworkPolicy, resolver: Resolver) -> Target:
    host, port = check_url_shape(url)
    literal = literal_address(host)
    if literal is not None:
        policy.check_address(host, literal, port)
        return Target(url, host, port, literal)
    try:
        resolved = await resolver(host, port)
    except (OSError, UnicodeError) as exc:
        raise RequestRefused(f"Cannot resolve {host}: {exc}", host=host) from exc
    if not resolved:
        raise RequestRefused(f"{host} resolves to no address", host=host)
    addresses = [ipaddress.ip_address(a) for a in resolved]
    for address in addresses:  # every answer must pass, or a rebinding answer could slip through
        policy.check_address(host, address, port)
    return Target(url, host, port, addresses[0])


@dataclass
class Outcome:
    status_code: int
    headers: httpx.Headers
    body: bytes
    url: str  # the last hop
    hops: list[str]


async def send(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    content: bytes | None,
    policy: NetworkPolicy,
    resolver: Resolver,
    budget: float,
    max_bytes: int,
    follow_redirects: bool,
    max_redirects: int,
    user_agent: str,
    sensitive_headers: frozenset[str] = frozenset(),
) -> Outcome:
    """Send one request (and its redirects) under the guard, all within ``budget`` seconds.
    ``sensitive_headers`` (lower case), like credentials, never follow a redirect to another origin."""
    current = httpx.URL(url)
    hops: list[str] = []
    send_headers = dict(headers)
    async with asyncio.timeout(budget):
        while True:
            target = await resolve_target(current, policy, resolver)
            response_status, response_headers, body = await _send_pinned(
                target, method, send_headers, content, budget=budget, max_bytes=max_bytes, user_agent=user_agent
            )
            location = response_headers.get("location")
            if not (follow_redirects and response_status in REDIRECTS and location):
                return Outcome(response_status, response_headers, body, str(current), hops)
            if len(hops) >= max_redirects:
                raise RequestRefused(f"More than {max_redirects} redirects")
            following = httpx.URL(urljoin(str(current), location))
            hops.append(str(following.copy_with(query=None)))
            if response_status == 303 or (response_status in (301, 302) and method not in ("GET", "HEAD")):
                method, content = "GET", None
                send_headers = {k: v for k, v in send_headers.items() if k.lower() != "content-type"}
            if (following.scheme, following.host, following.port) != (current.scheme, current.host, current.port):
                dropped = CREDENTIAL_HEADERS | sensitive_headers
                send_headers = {k: v for k, v in send_headers.items() if k.lower() not in dropped}
            current = following


async def _send_pinned(
    target: Target,
    method: str,
    headers: Mapping[str, str],
    content: bytes | None,
    *,
    budget: float,
    max_bytes: int,
    user_agent: str,
) -> tuple[int, httpx.Headers, bytes]:
    host_header = target.url.netloc.decode("ascii")
    pinned = target.url.copy_with(host=str(target.address))
    extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
    # A fresh transport per request: a pooled connection must never serve another host
    # whose certificate it did not check; no proxy from the environment either.
    transport = httpx.AsyncHTTPTransport(retries=0)
    async with httpx.AsyncClient(transport=transport, timeout=budget, follow_redirects=False, trust_env=False) as client:
        request = client.build_request(
            method, pinned, headers={"User-Agent": user_agent, **headers, "Host": host_header},
            content=content, extensions=extensions,
        )
        response = await client.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise ResponseTooLarge(f"the response is larger than {max_bytes} bytes")
                chunks.append(chunk)
        finally:
            await response.aclose()
    return response.status_code, response.headers, b"".join(chunks)
