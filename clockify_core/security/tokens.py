"""Verification of the tokens Clockify signs (docs/clockify.md#tokens).

Every Clockify token is a compact JWS signed with RS256. :class:`TokenVerifier` runs the
whole checklist: the algorithm is pinned to RS256 before any key is touched; the
signature must verify under a key from the :class:`~clockify_core.security.keys.KeyProvider`;
``iss`` must be ``clockify``, ``type`` must be ``addon`` and ``sub`` the add-on key;
``exp`` is honoured when present and required on user and lifecycle tokens (installation
and webhook tokens never expire); ``workspaceId`` and ``addonId`` must be present. A user
token must name its ``user``, and a token carrying the claims only user tokens have
(``workspaceRole``, ``theme``, ``language``) is refused as any other kind.

Checks that need stored state stay with the caller: that the claims match the stored
installation (:func:`ensure_workspace`) and that a webhook token equals the one stored
at install time (``crypto.digests_match``).

Every refusal is a :class:`~clockify_core.errors.TokenInvalid` whose detail names the
reason; neither messages nor logs ever contain the token.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.exceptions import InvalidSignatureError, PyJWTError

from clockify_core.config import SigningConfig
from clockify_core.errors import ConfigurationError, TokenInvalid, Unauthorized, WorkspaceMismatch
from clockify_core.security.crypto import token_digest
from clockify_core.security.keys import KeyProvider

log = structlog.get_logger("clockify_core.security.tokens")

ALGORITHM = "RS256"
ISSUER = "clockify"
CLAIM_TYPE = "addon"
DEFAULT_CACHE_SIZE = 10_000
# Clockify tokens are about 1 KB; the bound keeps hashing and parsing of junk cheap.
MAX_TOKEN_LENGTH = 8192

Clock = Callable[[], float]


class TokenKind(StrEnum):
    """Where a token came from, which decides the rules it must meet."""

    INSTALLATION = "installation"  # `authToken` of the INSTALLED lifecycle body
    USER = "user"  # `auth_token` query parameter of an iframe, 30 minutes
    WEBHOOK = "webhook"  # `clockify-signature` header, reduced claim set
    LIFECYCLE = "lifecycle"  # `X-Addon-Lifecycle-Token` header


# User tokens are documented to expire, and Clockify's TypeScript SDK demands `exp` on
# lifecycle tokens by default: a lifecycle call can uninstall (purge) a workspace, so its
# token must not be good forever, and its `exp` bounds how long a used one is remembered
# (docs/clockify.md#tokens). Installation and webhook tokens never expire: demanding `exp`
# on them would refuse valid ones.
EXP_REQUIRED: frozenset[TokenKind] = frozenset({TokenKind.USER, TokenKind.LIFECYCLE})

# Claims only a user token carries (docs/clockify.md#claims). Every member of a workspace holds a user
# token in the sidebar iframe; it must never pass where only Clockify sends tokens: lifecycle
# calls (an uninstall purges the workspace), webhooks and the INSTALLED body.
USER_ONLY_CLAIMS: tuple[str, ...] = ("workspaceRole", "theme", "language")

# Optional string claims: attribute name -> claim name.
_OPTIONAL_CLAIMS: Mapping[str, str] = {
    "user_id": "user",
    "backend_url": "backendUrl",
    "reports_url": "reportsUrl",
    "pto_url": "ptoUrl",
    "locations_url": "locationsUrl",
    "screenshots_url": "screenshotsUrl",
    "language": "language",
    "theme": "theme",
    "workspace_role": "workspaceRole",
}


@dataclass(frozen=True, slots=True)
class ClockifyClaims:
    """The verified claims of a Clockify token, typed; ``raw`` keeps every claim."""

    workspace_id: str
    addon_id: str
    sub: str
    user_id: str | None = None
    backend_url: str | None = None
    reports_url: str | None = None
    pto_url: str | None = None
    locations_url: str | None = None
    screenshots_url: str | None = None
    language: str | None = None
    theme: str | None = None
    workspace_role: str | None = None
    exp: int | None = None
    raw: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, hash=False
    )

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> ClockifyClaims:
        """Build claims from a camelCase payload, refusing missing or mistyped claims."""
        required = {
            name: _required_string(payload, name) for name in ("workspaceId", "addonId", "sub")
        }
        optional = {
            attr: _optional_string(payload, claim) for attr, claim in _OPTIONAL_CLAIMS.items()
        }
        exp = _numeric_date(payload, "exp")
        return cls(
            workspace_id=required["workspaceId"],
            addon_id=required["addonId"],
            sub=required["sub"],
            exp=None if exp is None else int(exp),
            raw=MappingProxyType(dict(payload)),
            **optional,
        )


def _required_string(payload: Mapping[str, Any], claim: str) -> str:
    value = payload.get(claim)
    if not isinstance(value, str) or not value:
        raise TokenInvalid(f"{claim} claim is missing")
    return value


def _optional_string(payload: Mapping[str, Any], claim: str) -> str | None:
    value = payload.get(claim)
    if value is None:
        return None
    if not isinstance(value, str):
        raise TokenInvalid(f"{claim} claim must be a string")
    return value


def _numeric_date(payload: Mapping[str, Any], claim: str) -> float | None:
    value = payload.get(claim)
    if value is None:
        return None
    # bool is an int subclass, and Python's json accepts NaN/Infinity, which compare false
    # against every time and would make a token immortal.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TokenInvalid(f"{claim} claim is not a number")
    return float(value)


@dataclass(frozen=True, slots=True)
class _Verified:
    claims: ClockifyClaims
    expires_at: float | None


class _VerifiedCache:
    """Bounded LRU of verified tokens, keyed by the SHA-256 of the token."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[str, _Verified] = OrderedDict()

    def get(self, digest: str) -> _Verified | None:
        entry = self._entries.get(digest)
        if entry is not None:
            self._entries.move_to_end(digest)
        return entry

    def put(self, digest: str, entry: _Verified) -> None:
        if self.size == 0:
            return
        self._entries[digest] = entry
        self._entries.move_to_end(digest)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def discard(self, digest: str) -> None:
        self._entries.pop(digest, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class TokenVerifier:
    """Verifies Clockify tokens for one add-on key.

    Successful verifications are remembered in a bounded LRU keyed by the token's
    SHA-256 (webhook tokens repeat on every delivery), so a repeated token costs a hash
    instead of an RSA verification. A remembered token is still refused once its
    ``exp`` passes. Keys removed from the provider do not evict remembered tokens;
    call :meth:`clear_cache` after revoking a key.
    """

    def __init__(
        self,
        addon_key: str,
        keys: KeyProvider,
        *,
        leeway_seconds: float = 30.0,
        clock: Clock = time.time,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        if not addon_key:
            raise ConfigurationError("TokenVerifier needs the add-on key")
        if leeway_seconds < 0:
            raise ConfigurationError("leeway_seconds must not be negative")
        if cache_size < 0:
            raise ConfigurationError("cache_size must not be negative (0 disables the cache)")
        self.addon_key = addon_key
        self._keys = keys
        self._leeway = leeway_seconds
        self._clock = clock
        self._jws = jwt.PyJWS(algorithms=[ALGORITHM])
        self._cache = _VerifiedCache(cache_size)

    @classmethod
    def from_config(
        cls,
        config: SigningConfig,
        keys: KeyProvider,
        *,
        clock: Clock = time.time,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> TokenVerifier:
        return cls(
            config.addon_key,
            keys,
            leeway_seconds=config.leeway_seconds,
            clock=clock,
            cache_size=cache_size,
        )

    @property
    def cached_tokens(self) -> int:
        return len(self._cache)

    def clear_cache(self) -> None:
        self._cache.clear()

    async def verify(self, token: str, kind: TokenKind, *, digest: str | None = None) -> ClockifyClaims:
        """Verify ``token`` as a token of ``kind`` and return its claims.

        ``digest`` is the token's :func:`~clockify_core.security.crypto.token_digest` when the
        caller has it already. Raises :class:`TokenInvalid` naming the reason for any refusal.
        """
        try:
            return await self._verify(token, kind, digest or token_digest(token))
        except TokenInvalid as exc:
            log.info("token.rejected", kind=kind.value, reason=exc.detail)
            raise

    async def _verify(self, token: str, kind: TokenKind, digest: str) -> ClockifyClaims:
        header_segment, _, _ = _split_compact(token)
        cached = self._cache.get(digest)
        if cached is not None:
            try:
                self._check_expiry(cached.expires_at, kind, self._clock())
            except TokenInvalid:
                if cached.expires_at is not None:
                    self._cache.discard(digest)
                raise
            # Verified before as one kind; the rules of the kind asked for now still apply.
            _check_kind(cached.claims.raw, kind)
            return cached.claims

        header = _decode_json_segment(header_segment, "header")
        # Pinned before any key is used: `none`, and HS256 keyed with the public key, die here.
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise TokenInvalid(_algorithm_refusal(alg))
        kid = header.get("kid")
        keys = await self._keys.get_keys(kid if isinstance(kid, str) else None)
        if not keys:
            raise TokenInvalid("no signing key matches the token")
        payload = _decode_json(self._verified_payload(token, keys), "payload")

        now = self._clock()
        expires_at = self._check_claims(payload, kind, now)
        claims = ClockifyClaims.from_payload(payload)
        # Cached before the kind check: the token is genuine whatever it may be used as.
        self._cache.put(digest, _Verified(claims, expires_at))
        _check_kind(payload, kind)
        return claims

    def _verified_payload(self, token: str, keys: list[RSAPublicKey]) -> bytes:
        for key in keys:
            try:
                decoded = self._jws.decode_complete(token, key, algorithms=[ALGORITHM])
            except InvalidSignatureError:
                continue
            except PyJWTError as exc:
                raise TokenInvalid("token is not a JWT") from exc
            payload = decoded.get("payload")
            if not isinstance(payload, bytes):
                raise TokenInvalid("token is not a JWT")
            return payload
        raise TokenInvalid("signature does not verify")

    def _check_claims(
        self, payload: Mapping[str, Any], kind: TokenKind, now: float
    ) -> float | None:
        if payload.get("iss") != ISSUER:
            raise TokenInvalid("issuer must be clockify")
        if payload.get("type") != CLAIM_TYPE:
            raise TokenInvalid("type must be addon")
        if payload.get("sub") != self.addon_key:
            raise TokenInvalid("subject does not match the add-on key")
        not_before = _numeric_date(payload, "nbf")
        if not_before is not None and now + self._leeway < not_before:
            raise TokenInvalid("token is not valid yet")
        expires_at = _numeric_date(payload, "exp")
        self._check_expiry(expires_at, kind, now)
        return expires_at

    def _check_expiry(self, expires_at: float | None, kind: TokenKind, now: float) -> None:
        if expires_at is None:
            if kind in EXP_REQUIRED:
                raise TokenInvalid(f"{kind.value} token must carry exp")
            return
        if now > expires_at + self._leeway:
            raise TokenInvalid("token expired")


def _check_kind(payload: Mapping[str, Any], kind: TokenKind) -> None:
    """A user token names its user; no other kind carries the claims of a user token."""
    if kind is TokenKind.USER:
        user = payload.get("user")
        if not isinstance(user, str) or not user:
            raise TokenInvalid("user token must carry user")
    elif any(payload.get(claim) is not None for claim in USER_ONLY_CLAIMS):
        raise TokenInvalid(f"user tokens are not {kind.value} tokens")


_B64URL_VALUES = {
    c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
}
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_ALG_NAME = re.compile(r"[A-Za-z0-9+_-]{1,16}")


def _split_compact(token: object) -> tuple[str, str, str]:
    """The three segments of a compact JWS in canonical base64url, or a refusal.

    Lenient base64 decoders skip characters outside the alphabet and ignore the unused
    low bits of the last character, so many distinct strings would verify as one token
    (PyJWT did until GHSA-hxm8-2xgr-2p9m). Checking here keeps that independent of the
    installed PyJWT.
    """
    if not isinstance(token, str) or not token:
        raise TokenInvalid("token is missing")
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenInvalid("token is too long")
    if not _COMPACT_JWS.fullmatch(token):
        raise TokenInvalid("token is not a JWT")
    header, payload, signature = token.split(".")
    if not all(_is_canonical_b64url(segment) for segment in (header, payload, signature)):
        raise TokenInvalid("token is not a JWT")
    return header, payload, signature


def _is_canonical_b64url(segment: str) -> bool:
    remainder = len(segment) % 4
    if remainder == 1:
        return False
    if remainder == 0:
        return True
    unused_bits = 0x0F if remainder == 2 else 0x03
    return _B64URL_VALUES[segment[-1]] & unused_bits == 0


def _decode_json_segment(segment: str, what: str) -> Mapping[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TokenInvalid("token is not a JWT") from exc
    return _decode_json(raw, what)


def _decode_json(raw: bytes, what: str) -> Mapping[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise TokenInvalid(f"token {what} is not JSON") from exc
    if not isinstance(value, dict):
        raise TokenInvalid(f"token {what} is not a JSON object")
    return value


def unverified_claims(token: object) -> Mapping[str, Any]:
    """The payload of ``token`` WITHOUT checking its signature, decoded as safely as the verifier
    decodes (size bound, canonical base64url, nesting that cannot exhaust the stack).

    Only for cosmetic choices about a token that failed verification (the error page's theme);
    never for a decision. Raises :class:`TokenInvalid` when the payload cannot be read.
    """
    _, payload, _ = _split_compact(token)
    return _decode_json_segment(payload, "payload")


def _algorithm_refusal(alg: object) -> str:
    if alg is None:
        return "token header names no algorithm"
    if isinstance(alg, str) and _ALG_NAME.fullmatch(alg):
        return f"algorithm {alg} is not allowed"
    return "algorithm is not allowed"


def ensure_workspace(
    claims: ClockifyClaims, workspace_id: str, *, addon_id: str | None = None
) -> None:
    """Refuse claims of another workspace (or, with ``addon_id``, another installation).

    A valid token for workspace A must not unlock data in workspace B (docs/clockify.md#tokens).
    """
    if claims.workspace_id != workspace_id:
        raise WorkspaceMismatch("token belongs to another workspace")
    if addon_id is not None and claims.addon_id != addon_id:
        raise WorkspaceMismatch("token belongs to another installation")


def extract_bearer(header_value: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if header_value is None or not header_value.strip():
        raise Unauthorized("bearer token is missing", headers=challenge)
    scheme, _, credentials = header_value.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise TokenInvalid("authorization header must be 'Bearer <token>'", headers=challenge)
    return credentials.strip()
