"""Public keys that verify Clockify-signed tokens.

A :class:`KeyProvider` answers "which keys may have signed a token with this ``kid``?".
:class:`StaticKeyProvider` holds fixed keys (Clockify's published PEM, docs/clockify.md#tokens, or
a development key); :class:`JwksKeyProvider` follows a JWKS endpoint, caching it and
picking up rotated keys. :func:`key_provider_from_config` builds the provider a
:class:`~clockify_core.config.SigningConfig` describes.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import structlog
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm
from jwt.exceptions import PyJWTError

from clockify_core.config import SigningConfig
from clockify_core.errors import ConfigurationError

log = structlog.get_logger("clockify_core.security.keys")

# NIST SP 800-131A: RSA below 2048 bits is disallowed for signatures.
MIN_RSA_BITS = 2048
BUNDLED_KEY_RESOURCE = "clockify_public_key.pem"

Clock = Callable[[], float]


def load_public_key(pem_text: str | None = None, path: str | Path | None = None) -> RSAPublicKey:
    """Load an RSA public key from PEM text, else from ``path``, else Clockify's bundled key.

    Raises :class:`ConfigurationError` when the file cannot be read, the text is not a
    PEM public key, or the key is not RSA of at least 2048 bits.
    """
    if pem_text is not None and pem_text.strip():
        return _parse_pem(pem_text.encode(), source="public_key")
    if path is not None and str(path).strip():
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigurationError(
                f"public key file {path} cannot be read: {exc.strerror or exc}"
            ) from exc
        return _parse_pem(data, source=f"public key file {path}")
    return bundled_clockify_key()


@cache
def bundled_clockify_key() -> RSAPublicKey:
    """Clockify's published token-signing key, shipped with the kit (docs/clockify.md#tokens)."""
    data = resources.files("clockify_core.security").joinpath(BUNDLED_KEY_RESOURCE).read_bytes()
    return _parse_pem(data, source="bundled Clockify key")


def _parse_pem(data: bytes, *, source: str) -> RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigurationError(f"{source} is not a valid PEM public key") from exc
    return _require_rsa(key, source=source)


def _require_rsa(key: object, *, source: str) -> RSAPublicKey:
    if not isinstance(key, RSAPublicKey):
        raise ConfigurationError(f"{source} must be an RSA key, not {type(key).__name__}")
    if key.key_size < MIN_RSA_BITS:
        raise ConfigurationError(
            f"{source} is RSA-{key.key_size}; at least RSA-{MIN_RSA_BITS} is required"
        )
    return key


def key_fingerprint(key: RSAPublicKey) -> str:
    """SHA-256 hex of the key's DER SubjectPublicKeyInfo, the form docs/clockify.md#tokens quotes."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


class KeyProvider(Protocol):
    async def get_keys(self, kid: str | None) -> list[RSAPublicKey]:
        """Keys that may have signed a token whose header carries ``kid`` (or none)."""
        ...


class StaticKeyProvider:
    """Fixed keys, offered for every token whatever its ``kid``."""

    def __init__(self, keys: Sequence[RSAPublicKey]) -> None:
        if not keys:
            raise ConfigurationError("StaticKeyProvider needs at least one key")
        self._keys = [_require_rsa(key, source="static key") for key in keys]

    async def get_keys(self, kid: str | None) -> list[RSAPublicKey]:
        return list(self._keys)


class CombinedKeyProvider:
    """Asks several providers in order and offers every key they return."""

    def __init__(self, providers: Sequence[KeyProvider]) -> None:
        self._providers = tuple(providers)

    async def get_keys(self, kid: str | None) -> list[RSAPublicKey]:
        keys: list[RSAPublicKey] = []
        for provider in self._providers:
            keys.extend(await provider.get_keys(kid))
        return keys


class JwksKeyProvider:
    """RSA keys from a JWKS endpoint (RFC 7517), cached and refreshed.

    * The set is fetched on first use and again once ``cache_seconds`` have passed.
    * A ``kid`` not in the set triggers a refetch, since the issuer may have rotated.
    * Fetches happen at most once per ``min_refresh_seconds`` whatever the reason, so a
      flood of tokens with random ``kid`` values cannot hammer the endpoint. Callers
      arriving during a fetch wait for it and share its result.
    * A failed fetch (network, status, malformed body, no usable key) keeps the last
      good keys and is retried after ``min_refresh_seconds``.

    A token whose ``kid`` is unknown is offered only the keys that have no ``kid``; a
    token without ``kid`` is offered every key.
    """

    def __init__(
        self,
        url: str,
        http_client: httpx.AsyncClient,
        *,
        cache_seconds: float = 3600.0,
        min_refresh_seconds: float = 5.0,
        timeout_seconds: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        _require_secure_url(url)
        self.url = url
        self._client = http_client
        self._ttl = cache_seconds
        self._min_interval = min_refresh_seconds
        self._timeout = timeout_seconds
        self._clock = clock
        self._by_kid: dict[str, RSAPublicKey] = {}
        self._without_kid: list[RSAPublicKey] = []
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()

    async def get_keys(self, kid: str | None) -> list[RSAPublicKey]:
        # While a fetch is in flight, wait for it rather than answer from the old set.
        if self._lock.locked() or self._needs_refresh(kid):
            async with self._lock:
                if self._needs_refresh(kid):
                    await self._refresh()
        if kid is None:
            return [*self._by_kid.values(), *self._without_kid]
        known = self._by_kid.get(kid)
        return [known] if known is not None else list(self._without_kid)

    def _needs_refresh(self, kid: str | None) -> bool:
        now = self._clock()
        if self._attempted_at is not None and now - self._attempted_at < self._min_interval:
            return False
        if self._fetched_at is None or now - self._fetched_at >= self._ttl:
            return True
        return kid is not None and kid not in self._by_kid

    async def _refresh(self) -> None:
        self._attempted_at = self._clock()
        try:
            response = await self._client.get(self.url, timeout=self._timeout)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning(
                "jwks.refresh_failed",
                url=self.url,
                error=type(exc).__name__,
                kept_keys=self._count(),
            )
            return
        by_kid, without_kid = _parse_jwks(document, url=self.url)
        if not by_kid and not without_kid:
            log.warning(
                "jwks.refresh_failed",
                url=self.url,
                error="no usable RSA key",
                kept_keys=self._count(),
            )
            return
        self._by_kid, self._without_kid = by_kid, without_kid
        self._fetched_at = self._clock()
        log.info("jwks.refreshed", url=self.url, keys=self._count())

    def _count(self) -> int:
        return len(self._by_kid) + len(self._without_kid)


def _parse_jwks(document: Any, *, url: str) -> tuple[dict[str, RSAPublicKey], list[RSAPublicKey]]:
    by_kid: dict[str, RSAPublicKey] = {}
    without_kid: list[RSAPublicKey] = []
    entries = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(entries, list):
        return by_kid, without_kid
    for entry in entries:
        key = _jwk_to_key(entry, url=url)
        if key is None:
            continue
        kid = entry.get("kid")
        if isinstance(kid, str) and kid:
            by_kid[kid] = key
        else:
            without_kid.append(key)
    return by_kid, without_kid


def _jwk_to_key(entry: Any, *, url: str) -> RSAPublicKey | None:
    """The RS256 verification key an entry describes, or None for entries to skip."""
    if not isinstance(entry, Mapping) or entry.get("kty") != "RSA":
        return None
    if entry.get("use", "sig") != "sig" or entry.get("alg", "RS256") != "RS256":
        return None
    if "d" in entry:
        # Private material on a public endpoint means the issuer's key is compromised or misconfigured.
        log.warning(
            "jwks.key_skipped", url=url, kid=entry.get("kid"), reason="private key material"
        )
        return None
    try:
        key = RSAAlgorithm.from_jwk(dict(entry))
        return _require_rsa(key, source="JWKS key")
    except (PyJWTError, ConfigurationError, ValueError, TypeError) as exc:
        log.warning("jwks.key_skipped", url=url, kid=entry.get("kid"), reason=type(exc).__name__)
        return None


def _require_secure_url(url: str) -> None:
    parts = urlsplit(url)
    local = parts.hostname in {"localhost", "127.0.0.1", "::1"}
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        # Keys fetched over plain HTTP could be swapped in transit, and with them every token.
        raise ConfigurationError(f"jwks_url must be an https:// URL, got {url!r}")


def key_provider_from_config(
    config: SigningConfig, http_client: httpx.AsyncClient | None = None
) -> KeyProvider:
    """The provider a signing block describes.

    The static key is ``public_key`` (PEM text), else ``public_key_path``, else the
    bundled Clockify key. With ``jwks_url`` the JWKS keys are offered first and the
    static key after them; that needs ``http_client``.
    """
    static = StaticKeyProvider([load_public_key(config.public_key, config.public_key_path)])
    if not config.jwks_url:
        return static
    if http_client is None:
        raise ConfigurationError("signing.jwks_url is set but no HTTP client was given to fetch it")
    jwks = JwksKeyProvider(config.jwks_url, http_client, cache_seconds=config.jwks_cache_seconds)
    return CombinedKeyProvider([jwks, static])
