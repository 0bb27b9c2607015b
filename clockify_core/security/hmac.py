"""HMAC-SHA256 signatures for custom (non-Clockify) webhooks.

The scheme, documented for senders in ``docs/custom-webhooks.md``::

    X-Timestamp: <unix seconds, ASCII digits>
    X-Signature: sha256=<hex(HMAC_SHA256(secret, timestamp + "." + body))>

The timestamp is signed together with the raw body, so a captured request cannot be
replayed with a fresh timestamp; requests older or newer than the tolerance are refused.
Several secrets may be active at once so a secret can be rotated without downtime.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping, Sequence

import structlog
from pydantic import SecretStr

from clockify_core.errors import ConfigurationError, TokenInvalid

log = structlog.get_logger("clockify_core.security.hmac")

SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Timestamp"
SIGNATURE_PREFIX = "sha256="
DEFAULT_TOLERANCE_SECONDS = 300.0
# RFC 2104 §3: keys shorter than the hash output weaken the MAC; 16 bytes is the floor we accept.
MIN_SECRET_BYTES = 16

Secret = bytes | str | SecretStr
Clock = Callable[[], float]

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


def _secret_bytes(secret: Secret) -> bytes:
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    return secret.encode() if isinstance(secret, str) else bytes(secret)


def _digest(key: bytes, timestamp: str, body: bytes) -> bytes:
    return hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).digest()


def sign(secret: Secret, body: bytes, timestamp: int | str) -> str:
    """The ``X-Signature`` value a sender puts on ``body`` sent at ``timestamp``."""
    return SIGNATURE_PREFIX + _digest(_secret_bytes(secret), str(timestamp), body).hex()


def signed_headers(
    secret: Secret,
    body: bytes,
    timestamp: int,
    *,
    signature_header: str = SIGNATURE_HEADER,
    timestamp_header: str = TIMESTAMP_HEADER,
) -> dict[str, str]:
    """Both headers a sender adds to a request carrying ``body``."""
    return {timestamp_header: str(timestamp), signature_header: sign(secret, body, timestamp)}


class HmacVerifier:
    """Verifies custom-webhook signatures against one or more active secrets.

    Every refusal raises :class:`~clockify_core.errors.TokenInvalid` (401) naming the
    reason: a missing or malformed header, a timestamp outside ``tolerance_seconds``
    (in the past or the future), or a signature no active secret produces.
    """

    def __init__(
        self,
        secrets: Sequence[Secret],
        *,
        tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
        clock: Clock = time.time,
        signature_header: str = SIGNATURE_HEADER,
        timestamp_header: str = TIMESTAMP_HEADER,
    ) -> None:
        if isinstance(secrets, str | bytes | SecretStr):
            raise ConfigurationError(
                "HmacVerifier takes a sequence of secrets, not a single secret"
            )
        keys = [_secret_bytes(secret) for secret in secrets]
        if not keys:
            raise ConfigurationError("HmacVerifier needs at least one secret")
        if any(len(key) < MIN_SECRET_BYTES for key in keys):
            raise ConfigurationError(f"every HMAC secret must be at least {MIN_SECRET_BYTES} bytes")
        if tolerance_seconds <= 0:
            raise ConfigurationError("tolerance_seconds must be positive")
        self._keys = keys
        self._tolerance = tolerance_seconds
        self._clock = clock
        self.signature_header = signature_header
        self.timestamp_header = timestamp_header

    def verify(self, body: bytes, signature: str | None, timestamp: str | None) -> int:
        """Check the headers of a request carrying ``body``.

        Returns the index of the secret that matched, so operators can tell when an
        old secret has stopped being used and can be retired.
        """
        try:
            return self._verify(body, signature, timestamp)
        except TokenInvalid as exc:
            log.info("hmac.rejected", reason=exc.detail)
            raise

    def verify_request(self, body: bytes, headers: Mapping[str, str]) -> int:
        """:meth:`verify` with the two headers looked up (case-insensitively) in ``headers``."""
        return self.verify(
            body, _header(headers, self.signature_header), _header(headers, self.timestamp_header)
        )

    def _verify(self, body: bytes, signature: str | None, timestamp: str | None) -> int:
        if signature is None or not signature.strip():
            raise TokenInvalid(f"{self.signature_header} header is missing")
        if timestamp is None or not timestamp.strip():
            raise TokenInvalid(f"{self.timestamp_header} header is missing")
        presented = _parse_signature(signature, self.signature_header)
        timestamp = timestamp.strip()
        if not _TIMESTAMP.fullmatch(timestamp):
            raise TokenInvalid(f"{self.timestamp_header} header must be unix seconds")
        age = self._clock() - int(timestamp)
        if age > self._tolerance:
            raise TokenInvalid("timestamp is too old")
        if age < -self._tolerance:
            raise TokenInvalid("timestamp is in the future")
        matched = -1
        # Every secret is compared, in constant time, so timing reveals nothing about which one matched.
        for index, key in enumerate(self._keys):
            if hmac.compare_digest(_digest(key, timestamp, body), presented) and matched < 0:
                matched = index
        if matched < 0:
            raise TokenInvalid("signature does not match")
        return matched


def _parse_signature(value: str, header_name: str) -> bytes:
    value = value.strip()
    if value[: len(SIGNATURE_PREFIX)].lower() != SIGNATURE_PREFIX:
        raise TokenInvalid(f"{header_name} header must start with {SIGNATURE_PREFIX}")
    hex_digest = value[len(SIGNATURE_PREFIX) :]
    if not _HEX_DIGEST.fullmatch(hex_digest):
        raise TokenInvalid(f"{header_name} header must carry 64 hex digits")
    return bytes.fromhex(hex_digest)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None
