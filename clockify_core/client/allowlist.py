"""Which hosts the Clockify client may call: a guard against SSRF through token claims.

Base URLs come from Clockify's token claims, so a forged or mistaken claim must not
turn the client against internal services. Rules for an entry:

* ``clockify.me`` allows that host and every subdomain (``api.clockify.me``,
  ``euc1.clockify.me``), on the scheme's default port only (443 for https, 80 for http).
  It does not allow ``evilclockify.me`` or ``clockify.me.evil.com``.
* ``127.0.0.1:8123`` or ``localhost:8123`` allows exactly that port (and, for a name,
  its subdomains on that port). A port is how the simulator or a dev environment is
  let in without opening every port of the host.
* IP literals (``10.0.0.5``, ``[::1]:8080``) match only themselves, never as a suffix.
* Names compare case-insensitively, ignoring a trailing dot, in their IDNA (ASCII) form.

Only ``http`` and ``https`` URLs are considered at all.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from clockify_core.errors import ConfigurationError, HostNotAllowed

ALLOWED_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class _Entry:
    host: str
    port: int | None
    is_ip: bool

    def matches(self, host: str, port: int, default_port: bool) -> bool:
        # No port in the entry: the scheme's default port only. A port: exactly that one.
        if (self.port is None and not default_port) or (
            self.port is not None and self.port != port
        ):
            return False
        if self.is_ip:
            return host == self.host
        return host == self.host or host.endswith("." + self.host)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _normalise_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host and not host.isascii():
        host = host.encode("idna").decode("ascii")
    return host


def _parse_entry(raw: str) -> _Entry:
    text = raw.strip()
    if not text or "/" in text or "*" in text or "@" in text:
        raise ConfigurationError(
            f"Allowed API host {raw!r} must be a bare host or host:port "
            "(subdomains are included; no scheme, path or wildcard)"
        )
    port: int | None = None
    if text.startswith("["):  # [v6]:port
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ConfigurationError(f"Allowed API host {raw!r} is not a valid [IPv6]:port")
            port = _parse_port(raw, rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _parse_port(raw, port_text)
    else:  # a name, an IPv4 address or a bare IPv6 address
        host = text
    host = _normalise_host(host)
    if not host:
        raise ConfigurationError(f"Allowed API host {raw!r} has no host")
    return _Entry(host=host, port=port, is_ip=_is_ip(host))


def _parse_port(raw: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigurationError(f"Allowed API host {raw!r} has an invalid port")
    return int(text)


class HostAllowlist:
    """Hosts (with their subdomains) the client may call; see the module doc for the rules."""

    def __init__(self, hosts: Iterable[str]) -> None:
        self._entries = tuple(_parse_entry(host) for host in hosts)

    def __repr__(self) -> str:
        shown = [e.host + (f":{e.port}" if e.port else "") for e in self._entries]
        return f"HostAllowlist({shown!r})"

    def allows(self, url: httpx.URL | str) -> bool:
        try:
            self.check(url)
        except HostNotAllowed:
            return False
        return True

    def check(self, url: httpx.URL | str) -> None:
        """Raise :class:`HostNotAllowed` naming the host unless ``url`` may be called."""
        url = httpx.URL(url) if isinstance(url, str) else url
        if url.scheme not in ALLOWED_SCHEMES:
            raise HostNotAllowed(
                f"Refusing a {url.scheme or 'relative'} URL: only http and https are allowed",
                host=url.host or None,
            )
        host = _normalise_host(url.raw_host.decode("ascii"))
        if not host:
            raise HostNotAllowed("Refusing a URL without a host")
        default_port = _DEFAULT_PORTS[url.scheme]
        # httpx normalises an explicit default port (https://x:443) to None.
        port = url.port if url.port is not None else default_port
        if not any(entry.matches(host, port, port == default_port) for entry in self._entries):
            shown = f"[{host}]" if ":" in host else host
            if port != default_port:
                shown += f":{port}"
            raise HostNotAllowed(
                f"Refusing to call {shown}: not in the allowed API hosts", host=shown
            )
