"""Standard Webhooks signatures (HMAC-SHA256) for custom (non-Clockify) webhooks.

The scheme of https://www.standardwebhooks.com (spec: github.com/standard-webhooks/
standard-webhooks, ``spec/standard-webhooks.md``), documented for senders in
``docs/custom-webhooks.md``::

    webhook-id:        <the message's unique id, 1-255 printable ASCII characters>
    webhook-timestamp: <unix seconds, ASCII digits>
    webhook-signature: v1,<base64(HMAC_SHA256(key, id + "." + timestamp + "." + body))>

The key is the base64-decoded part of a ``whsec_<base64>`` secret. ``webhook-signature``
is a space-separated list, so a sender can sign with two secrets while it rotates; one
valid ``v1`` entry is enough and other versions (``v1a``, ...) are ignored. Id and
timestamp are signed with the body: a captured request cannot be replayed later (the
timestamp must be within the tolerance) nor as a new message (receivers deduplicate on
the id). Several secrets may be active at once, so a receiver can rotate without downtime.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
from pydantic import SecretStr

from clockify_core.errors import ConfigurationError, TokenInvalid

log = structlog.get_logger("clockify_core.security.hmac")

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"  # noqa: S105  the prefix of Standard Webhooks secrets, not a secret
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300.0
# RFC 2104 §3: keys shorter than the hash output weaken the MAC; 16 bytes is the floor we accept.
MIN_SECRET_BYTES = 16
# The spec asks for 24-64 random bytes; 32 is SHA-256's block-size sweet spot.
GENERATED_SECRET_BYTES = 32

Secret = bytes | str | SecretStr
Clock = Callable[[], float]

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_WEBHOOK_ID = re.compile(r"[\x20-\x7e]{1,255}")
_DIGEST_BYTES = hashlib.sha256().digest_size


def generate_secret() -> str:
    """A new ``whsec_`` secret of :data:`GENERATED_SECRET_BYTES` random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(GENERATED_SECRET_BYTES)).decode()


def secret_key(secret: Secret) -> bytes:
    """The HMAC key of ``secret``: the decoded base64 of a ``whsec_`` secret; bytes as given.

    Any other string is taken as its UTF-8 bytes, for secrets chosen before sources used
    ``whsec_`` secrets. Raises :class:`ConfigurationError` for keys under 16 bytes.
    """
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    if isinstance(secret, bytes):
        key = secret
    elif secret.startswith(SECRET_PREFIX):
        encoded = secret[len(SECRET_PREFIX) :]
        try:
            # Padding is optional in the wild (Svix omits it); validate refuses any other character.
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigurationError(
                f"a {SECRET_PREFIX} secret must be base64 after the prefix"
            ) from None
    else:
        key = secret.encode()
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigurationError(f"every HMAC secret must be at least {MIN_SECRET_BYTES} bytes")
    return key


def _digest(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> bytes:
    return hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def sign(secret: Secret, webhook_id: str, timestamp: int | str, body: bytes) -> str:
    """One ``webhook-signature`` entry (``v1,<base64>``) for ``body`` sent as message ``webhook_id``."""
    digest = _digest(secret_key(secret), webhook_id, str(timestamp), body)
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signed_headers(
    secret: Secret, body: bytes, timestamp: int, *, webhook_id: str | None = None
) -> dict[str, str]:
    """The three headers a sender adds to a request carrying ``body``; a fresh id unless given."""
    webhook_id = webhook_id or f"msg_{secrets.token_hex(12)}"
    return {
        ID_HEADER: webhook_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, webhook_id, timestamp, body),
    }


@dataclass(frozen=True, slots=True)
class Verified:
    """A request that verified: its message id and time, and which secret signed it."""

    webhook_id: str
    timestamp: int
    # Lets operators see when the previous secret stops being used and can be retired.
    secret_index: int


class HmacVerifier:
    """Verifies Standard Webhooks signatures against one or more active secrets.

    Every refusal raises :class:`~clockify_core.errors.TokenInvalid` (401) naming the
    reason: a missing or malformed header, a timestamp outside ``tolerance_seconds``
    (in the past or the future), or no ``v1`` signature that an active secret produces.
    """

    def __init__(
        self,
        secrets: Sequence[Secret],
        *,
        tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
        clock: Clock = time.time,
    ) -> None:
        if isinstance(secrets, str | bytes | SecretStr):
            raise ConfigurationError(
                "HmacVerifier takes a sequence of secrets, not a single secret"
            )
        keys = [secret_key(secret) for secret in secrets]
        if not keys:
            raise ConfigurationError("HmacVerifier needs at least one secret")
        if tolerance_seconds <= 0:
            raise ConfigurationError("tolerance_seconds must be positive")
        self._keys = keys
        self._tolerance = tolerance_seconds
        self._clock = clock

    def verify(
        self, body: bytes, *, webhook_id: str | None, timestamp: str | None, signature: str | None
    ) -> Verified:
        """Check the three header values (``None`` when absent) of a request carrying ``body``."""
        try:
            return self._verify(body, webhook_id, timestamp, signature)
        except TokenInvalid as exc:
            log.info("hmac.rejected", reason=exc.detail)
            raise

    def _verify(
        self, body: bytes, webhook_id: str | None, timestamp: str | None, signature: str | None
    ) -> Verified:
        webhook_id = _required(ID_HEADER, webhook_id)
        timestamp = _required(TIMESTAMP_HEADER, timestamp)
        signature = _required(SIGNATURE_HEADER, signature)
        if not _WEBHOOK_ID.fullmatch(webhook_id):
            raise TokenInvalid(f"{ID_HEADER} header must be 1-255 printable ASCII characters")
        if not _TIMESTAMP.fullmatch(timestamp):
            raise TokenInvalid(f"{TIMESTAMP_HEADER} header must be unix seconds")
        age = self._clock() - int(timestamp)
        if age > self._tolerance:
            raise TokenInvalid(f"{TIMESTAMP_HEADER} is more than {self._tolerance:g} s old")
        if age < -self._tolerance:
            raise TokenInvalid(
                f"{TIMESTAMP_HEADER} is more than {self._tolerance:g} s in the future"
            )
        presented, problem = _parse_signatures(signature)
        matched = -1
        # Every secret against every entry, in constant time: timing reveals nothing about which matched.
        for index, key in enumerate(self._keys):
            expected = _digest(key, webhook_id, timestamp, body)
            for candidate in presented:
                if hmac.compare_digest(expected, candidate) and matched < 0:
                    matched = index
        if matched < 0:
            raise TokenInvalid(problem or "signature does not match")
        return Verified(webhook_id=webhook_id, timestamp=int(timestamp), secret_index=matched)


def _required(name: str, value: str | None) -> str:
    if value is None or not value.strip():
        raise TokenInvalid(f"{name} header is missing")
    return value


def _parse_signatures(value: str) -> tuple[list[bytes], str | None]:
    """The ``v1`` digests of a ``webhook-signature`` value, and what was wrong with the rest.

    Entries of other versions are skipped, malformed ones too: one valid entry is enough
    (as in the reference libraries); the problem is the refusal's reason if none matches.
    """
    digests: list[bytes] = []
    problem = None
    for entry in value.split():
        version, comma, encoded = entry.partition(",")
        if not comma or not version:
            problem = f"{SIGNATURE_HEADER} entries must be <version>,<base64 signature>"
            continue
        if version != SIGNATURE_VERSION:
            continue
        try:
            digest = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            digest = b""
        if len(digest) != _DIGEST_BYTES:
            problem = f"{SIGNATURE_HEADER} v1 entries must be the base64 of a 32-byte HMAC-SHA256"
            continue
        digests.append(digest)
    if not digests and problem is None:
        problem = f"{SIGNATURE_HEADER} header has no v1 signature"
    return digests, problem
