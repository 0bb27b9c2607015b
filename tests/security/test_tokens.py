"""TokenVerifier against tokens minted with a development key, and forged ones."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from clockify_core.config import SigningConfig
from clockify_core.errors import TokenInvalid, Unauthorized, WorkspaceMismatch
from clockify_core.security.keys import StaticKeyProvider, load_public_key
from clockify_core.security.signing import KeyPair, TokenSigner
from clockify_core.security.tokens import (
    ClockifyClaims,
    TokenKind,
    TokenVerifier,
    ensure_workspace,
    extract_bearer,
)

ADDON_KEY = "time-mirror"
NOW = 1_767_225_600.0
WORKSPACE_ID = "64a687e29ae1f428e7ebe303"
ADDON_ID = "65b2c1d0e4f5a6b7c8d9e0f1"
USER_ID = "5a0ab5acb07987125438b60f"
BACKEND_URL = "https://api.clockify.me/api"
REPORTS_URL = "https://reports.api.clockify.me"


class FakeClock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingProvider:
    """A key provider that counts how often the verifier asks it for keys."""

    def __init__(self, keys: list[RSAPublicKey]) -> None:
        self.keys = keys
        self.calls = 0

    async def get_keys(self, kid: str | None) -> list[RSAPublicKey]:
        self.calls += 1
        return list(self.keys)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: Any) -> str:
    return b64url(json.dumps(value).encode())


def base_claims(**changes: Any) -> dict[str, Any]:
    """A webhook-shaped claim set; a change to None removes the claim."""
    claims: dict[str, Any] = {
        "iss": "clockify",
        "type": "addon",
        "sub": ADDON_KEY,
        "workspaceId": WORKSPACE_ID,
        "addonId": ADDON_ID,
    }
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


@pytest.fixture(scope="module")
def pair() -> KeyPair:
    return KeyPair.generate()


@pytest.fixture(scope="module")
def stranger() -> KeyPair:
    return KeyPair.generate()


@pytest.fixture(scope="module")
def public_key(pair: KeyPair) -> RSAPublicKey:
    return load_public_key(pair.public_pem.decode())


@pytest.fixture(scope="module")
def signer(pair: KeyPair) -> TokenSigner:
    return TokenSigner(pair.private_pem, ADDON_KEY, clock=lambda: NOW)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def provider(public_key: RSAPublicKey) -> CountingProvider:
    return CountingProvider([public_key])


@pytest.fixture
def verifier(provider: CountingProvider, clock: FakeClock) -> TokenVerifier:
    return TokenVerifier(ADDON_KEY, provider, leeway_seconds=30, clock=clock)


# Valid tokens of each kind.


async def test_installation_token_gives_typed_claims(
    signer: TokenSigner, verifier: TokenVerifier
) -> None:
    token = signer.installation_token(
        WORKSPACE_ID,
        ADDON_ID,
        user_id=USER_ID,
        backend_url=BACKEND_URL,
        reports_url=REPORTS_URL,
        pto_url="https://pto.api.clockify.me",
        extra={
            "locationsUrl": "https://locations.api.clockify.me",
            "screenshotsUrl": "https://screenshots.api.clockify.me",
        },
    )

    claims = await verifier.verify(token, TokenKind.INSTALLATION)

    assert claims == ClockifyClaims(
        workspace_id=WORKSPACE_ID,
        addon_id=ADDON_ID,
        sub=ADDON_KEY,
        user_id=USER_ID,
        backend_url=BACKEND_URL,
        reports_url=REPORTS_URL,
        pto_url="https://pto.api.clockify.me",
        locations_url="https://locations.api.clockify.me",
        screenshots_url="https://screenshots.api.clockify.me",
        exp=None,
        raw=claims.raw,
    )
    assert claims.raw["iss"] == "clockify"
    with pytest.raises(TypeError):
        claims.raw["iss"] = "someone-else"  # type: ignore[index]


async def test_user_token_gives_preferences_and_expiry(
    signer: TokenSigner, verifier: TokenVerifier
) -> None:
    token = signer.user_token(
        WORKSPACE_ID,
        ADDON_ID,
        user_id=USER_ID,
        backend_url=BACKEND_URL,
        reports_url=REPORTS_URL,
        workspace_role="ADMIN",
        theme="DARK",
        language="DE",
    )

    claims = await verifier.verify(token, TokenKind.USER)

    assert (claims.user_id, claims.workspace_role, claims.theme, claims.language) == (
        USER_ID,
        "ADMIN",
        "DARK",
        "DE",
    )
    assert claims.exp == int(NOW) + 30 * 60
    assert claims.backend_url == BACKEND_URL


async def test_webhook_token_has_the_reduced_claim_set(
    signer: TokenSigner, verifier: TokenVerifier
) -> None:
    claims = await verifier.verify(signer.webhook_token(WORKSPACE_ID, ADDON_ID), TokenKind.WEBHOOK)

    assert (claims.workspace_id, claims.addon_id, claims.sub) == (WORKSPACE_ID, ADDON_ID, ADDON_KEY)
    assert claims.user_id is None
    assert claims.backend_url is None
    assert claims.exp is None


async def test_lifecycle_token_passes(signer: TokenSigner, verifier: TokenVerifier) -> None:
    claims = await verifier.verify(
        signer.lifecycle_token(WORKSPACE_ID, ADDON_ID), TokenKind.LIFECYCLE
    )

    assert claims.workspace_id == WORKSPACE_ID
    assert claims.exp == int(NOW) + 300


@pytest.mark.parametrize("kind", [TokenKind.INSTALLATION, TokenKind.WEBHOOK])
async def test_tokens_without_exp_pass_where_clockify_never_expires_them(
    kind: TokenKind, signer: TokenSigner, verifier: TokenVerifier, clock: FakeClock
) -> None:
    token = signer.webhook_token(WORKSPACE_ID, ADDON_ID)
    clock.now += 10 * 365 * 86400

    assert (await verifier.verify(token, kind)).exp is None


async def test_a_lifecycle_token_must_carry_exp(signer: TokenSigner, verifier: TokenVerifier) -> None:
    """A lifecycle call can purge a workspace: its token must expire (Clockify's TypeScript SDK
    demands exp on lifecycle tokens by default), also when it was verified before as another kind."""
    token = signer.sign(base_claims(iat=int(NOW)))
    with pytest.raises(TokenInvalid, match=r"^lifecycle token must carry exp$"):
        await verifier.verify(token, TokenKind.LIFECYCLE)
    await verifier.verify(token, TokenKind.WEBHOOK)  # now cached, as the webhook token it could be
    with pytest.raises(TokenInvalid, match=r"^lifecycle token must carry exp$"):
        await verifier.verify(token, TokenKind.LIFECYCLE)


async def test_a_key_id_in_the_header_is_fine(signer: TokenSigner, verifier: TokenVerifier) -> None:
    token = signer.sign(base_claims(), headers={"kid": "clockify-1"})

    assert (await verifier.verify(token, TokenKind.WEBHOOK)).addon_id == ADDON_ID


# Expiry and leeway.


async def test_exp_within_leeway_is_accepted(signer: TokenSigner, verifier: TokenVerifier) -> None:
    token = signer.sign(base_claims(exp=int(NOW) - 29, user=USER_ID))

    assert (await verifier.verify(token, TokenKind.USER)).exp == int(NOW) - 29


async def test_exp_beyond_leeway_is_refused(signer: TokenSigner, verifier: TokenVerifier) -> None:
    token = signer.sign(base_claims(exp=int(NOW) - 31))

    with pytest.raises(TokenInvalid, match=r"^token expired$"):
        await verifier.verify(token, TokenKind.USER)


async def test_expired_user_token_is_refused(
    signer: TokenSigner, verifier: TokenVerifier, clock: FakeClock
) -> None:
    token = signer.user_token(
        WORKSPACE_ID, ADDON_ID, user_id=USER_ID, backend_url=BACKEND_URL, reports_url=REPORTS_URL
    )
    clock.now = NOW + 30 * 60 + 31

    with pytest.raises(TokenInvalid, match=r"^token expired$"):
        await verifier.verify(token, TokenKind.USER)


async def test_leeway_comes_from_the_signing_config(
    signer: TokenSigner, public_key: RSAPublicKey
) -> None:
    config = SigningConfig(addon_key=ADDON_KEY, leeway_seconds=0)
    strict = TokenVerifier.from_config(config, StaticKeyProvider([public_key]), clock=FakeClock())

    with pytest.raises(TokenInvalid, match=r"^token expired$"):
        await strict.verify(signer.sign(base_claims(exp=int(NOW) - 1)), TokenKind.USER)


# Refusals. Each forger gets the genuine key material and a stranger's signer.


@dataclass(frozen=True)
class Material:
    signer: TokenSigner
    stranger: TokenSigner
    private_pem: bytes
    public_pem: bytes


Forge = Callable[[Material], str]


def _alg_none(keys: Material) -> str:
    return f"{b64url_json({'alg': 'none', 'typ': 'JWT'})}.{b64url_json(base_claims())}.{b64url(b'x' * 32)}"


def _alg_none_unsigned(keys: Material) -> str:
    return f"{b64url_json({'alg': 'none', 'typ': 'JWT'})}.{b64url_json(base_claims())}."


def _hs256_with_public_key(keys: Material) -> str:
    # The classic confusion attack: HMAC keyed with the verifier's own public key.
    signing_input = f"{b64url_json({'alg': 'HS256', 'typ': 'JWT'})}.{b64url_json(base_claims())}"
    mac = hmac.new(keys.public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def _other_alg(alg: str) -> Forge:
    def forge(keys: Material) -> str:
        return f"{b64url_json({'alg': alg})}.{b64url_json(base_claims())}.{b64url(b'x' * 256)}"

    return forge


def _tampered_payload(keys: Material) -> str:
    header, _, signature = keys.signer.webhook_token(WORKSPACE_ID, ADDON_ID).split(".")
    return f"{header}.{b64url_json(base_claims(workspaceId='someone-elses-workspace'))}.{signature}"


def _signed(**changes: Any) -> Forge:
    return lambda keys: keys.signer.sign(base_claims(**changes))


def _signed_payload(payload: bytes) -> Forge:
    return lambda keys: jwt.PyJWS().encode(payload, keys.private_pem, algorithm="RS256")


REFUSALS = [
    pytest.param(_alg_none, TokenKind.WEBHOOK, "algorithm none is not allowed", id="alg-none"),
    pytest.param(
        _alg_none_unsigned, TokenKind.WEBHOOK, "token is not a JWT", id="alg-none-empty-signature"
    ),
    pytest.param(
        _hs256_with_public_key,
        TokenKind.WEBHOOK,
        "algorithm HS256 is not allowed",
        id="hs256-public-key",
    ),
    pytest.param(
        _other_alg("RS512"), TokenKind.WEBHOOK, "algorithm RS512 is not allowed", id="rs512"
    ),
    pytest.param(
        _other_alg("PS256"), TokenKind.WEBHOOK, "algorithm PS256 is not allowed", id="ps256"
    ),
    pytest.param(
        _other_alg("ES256"), TokenKind.WEBHOOK, "algorithm ES256 is not allowed", id="es256"
    ),
    pytest.param(
        _tampered_payload, TokenKind.WEBHOOK, "signature does not verify", id="tampered-payload"
    ),
    pytest.param(
        lambda keys: keys.stranger.webhook_token(WORKSPACE_ID, ADDON_ID),
        TokenKind.WEBHOOK,
        "signature does not verify",
        id="another-key",
    ),
    pytest.param(
        _signed(iss="clockify.evil"),
        TokenKind.WEBHOOK,
        "issuer must be clockify",
        id="wrong-issuer",
    ),
    pytest.param(_signed(iss=None), TokenKind.WEBHOOK, "issuer must be clockify", id="no-issuer"),
    pytest.param(_signed(type="user"), TokenKind.WEBHOOK, "type must be addon", id="wrong-type"),
    pytest.param(
        _signed(sub="another-addon"),
        TokenKind.WEBHOOK,
        "subject does not match the add-on key",
        id="wrong-sub",
    ),
    pytest.param(
        _signed(workspaceId=None),
        TokenKind.WEBHOOK,
        "workspaceId claim is missing",
        id="no-workspace",
    ),
    pytest.param(
        _signed(workspaceId=""),
        TokenKind.WEBHOOK,
        "workspaceId claim is missing",
        id="empty-workspace",
    ),
    pytest.param(
        _signed(addonId=None), TokenKind.WEBHOOK, "addonId claim is missing", id="no-addon-id"
    ),
    pytest.param(
        _signed(addonId=42), TokenKind.WEBHOOK, "addonId claim is missing", id="numeric-addon-id"
    ),
    pytest.param(_signed(), TokenKind.USER, "user token must carry exp", id="user-without-exp"),
    pytest.param(
        _signed(exp=int(NOW) + 60), TokenKind.USER, "user token must carry user", id="user-without-user"
    ),
    pytest.param(
        lambda keys: keys.signer.lifecycle_token(WORKSPACE_ID, ADDON_ID),
        TokenKind.USER,
        "user token must carry user",
        id="lifecycle-token-as-user-token",
    ),
    pytest.param(
        lambda keys: keys.signer.user_token(
            WORKSPACE_ID, ADDON_ID, user_id=USER_ID, backend_url=BACKEND_URL, reports_url=REPORTS_URL
        ),
        TokenKind.LIFECYCLE,
        "user tokens are not lifecycle tokens",
        id="user-token-as-lifecycle-token",
    ),
    pytest.param(
        lambda keys: keys.signer.user_token(
            WORKSPACE_ID, ADDON_ID, user_id=USER_ID, backend_url=BACKEND_URL, reports_url=REPORTS_URL
        ),
        TokenKind.INSTALLATION,
        "user tokens are not installation tokens",
        id="user-token-as-installation-token",
    ),
    pytest.param(
        _signed(workspaceRole="OWNER"),
        TokenKind.WEBHOOK,
        "user tokens are not webhook tokens",
        id="user-claims-on-a-webhook-token",
    ),
    pytest.param(
        _signed(exp="tomorrow"), TokenKind.WEBHOOK, "exp claim is not a number", id="exp-string"
    ),
    pytest.param(_signed(exp=True), TokenKind.WEBHOOK, "exp claim is not a number", id="exp-bool"),
    pytest.param(
        _signed(exp=float("nan")), TokenKind.USER, "exp claim is not a number", id="exp-nan"
    ),
    pytest.param(
        _signed(exp=float("inf")), TokenKind.USER, "exp claim is not a number", id="exp-infinite"
    ),
    pytest.param(
        _signed(nbf=int(NOW) + 60), TokenKind.WEBHOOK, "token is not valid yet", id="not-yet-valid"
    ),
    pytest.param(
        _signed(backendUrl=["x"]),
        TokenKind.INSTALLATION,
        "backendUrl claim must be a string",
        id="bad-url",
    ),
    pytest.param(
        _signed_payload(b"[1, 2]"),
        TokenKind.WEBHOOK,
        "token payload is not a JSON object",
        id="list-payload",
    ),
    pytest.param(
        _signed_payload(b"\xff{"),
        TokenKind.WEBHOOK,
        "token payload is not JSON",
        id="binary-payload",
    ),
]


@pytest.mark.parametrize(("forge", "kind", "reason"), REFUSALS)
async def test_refusals_name_the_reason_and_never_the_token(
    forge: Forge,
    kind: TokenKind,
    reason: str,
    signer: TokenSigner,
    stranger: KeyPair,
    pair: KeyPair,
    verifier: TokenVerifier,
) -> None:
    stranger_signer = TokenSigner(stranger.private_pem, ADDON_KEY, clock=lambda: NOW)
    token = forge(Material(signer, stranger_signer, pair.private_pem, pair.public_pem))

    with capture_logs() as logs, pytest.raises(TokenInvalid) as refused:
        await verifier.verify(token, kind)

    assert refused.value.detail == reason
    assert refused.value.status == 401
    assert logs == [
        {"event": "token.rejected", "log_level": "info", "kind": kind.value, "reason": reason}
    ]
    assert token not in repr(logs)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        pytest.param("", "token is missing", id="empty"),
        pytest.param("not-a-token", "token is not a JWT", id="one-segment"),
        pytest.param("a.b", "token is not a JWT", id="two-segments"),
        pytest.param("a.b.c.d", "token is not a JWT", id="four-segments"),
        pytest.param("eyJh.eyJh.sig=", "token is not a JWT", id="padding"),
        pytest.param("eyJh .eyJh.sig", "token is not a JWT", id="space"),
        pytest.param("a" * 9000, "token is too long", id="too-long"),
        pytest.param(
            f"{b64url(b'not json')}.{b64url_json({})}.{b64url(b'sig')}",
            "token header is not JSON",
            id="header-junk",
        ),
        pytest.param(
            f"{b64url_json([1])}.{b64url_json({})}.{b64url(b'sig')}",
            "token header is not a JSON object",
            id="header-list",
        ),
        pytest.param(
            f"{b64url_json({'typ': 'JWT'})}.{b64url_json({})}.{b64url(b'sig')}",
            "token header names no algorithm",
            id="no-alg",
        ),
        pytest.param(
            f"{b64url_json({'alg': ['RS256']})}.{b64url_json({})}.{b64url(b'sig')}",
            "algorithm is not allowed",
            id="alg-list",
        ),
    ],
)
async def test_malformed_tokens_are_refused(
    token: str, reason: str, verifier: TokenVerifier
) -> None:
    with pytest.raises(TokenInvalid) as refused:
        await verifier.verify(token, TokenKind.WEBHOOK)

    assert refused.value.detail == reason


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
async def test_truncated_token_is_refused(
    keep: float, signer: TokenSigner, verifier: TokenVerifier
) -> None:
    token = signer.webhook_token(WORKSPACE_ID, ADDON_ID)

    with pytest.raises(TokenInvalid) as refused:
        await verifier.verify(token[: int(len(token) * keep)], TokenKind.WEBHOOK)

    assert refused.value.detail in {"token is not a JWT", "signature does not verify"}


async def test_non_canonical_base64_twin_of_a_valid_token_is_refused(
    signer: TokenSigner, verifier: TokenVerifier
) -> None:
    token = signer.webhook_token(WORKSPACE_ID, ADDON_ID)
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    # An RS256 signature is 256 bytes: 342 characters, the last carrying 4 unused bits.
    twin = token[:-1] + alphabet[alphabet.index(token[-1]) ^ 0b0001]
    signature, twin_signature = token.rsplit(".", 1)[1], twin.rsplit(".", 1)[1]
    assert base64.urlsafe_b64decode(twin_signature + "==") == base64.urlsafe_b64decode(
        signature + "=="
    )  # a lenient decoder sees the very same signature

    with pytest.raises(TokenInvalid, match=r"^token is not a JWT$"):
        await verifier.verify(twin, TokenKind.WEBHOOK)


async def test_token_with_no_matching_key_is_refused(signer: TokenSigner, clock: FakeClock) -> None:
    verifier = TokenVerifier(ADDON_KEY, CountingProvider([]), clock=clock)

    with pytest.raises(TokenInvalid, match=r"^no signing key matches the token$"):
        await verifier.verify(signer.webhook_token(WORKSPACE_ID, ADDON_ID), TokenKind.WEBHOOK)


async def test_any_offered_key_may_verify(
    signer: TokenSigner, stranger: KeyPair, public_key: RSAPublicKey, clock: FakeClock
) -> None:
    provider = CountingProvider([load_public_key(stranger.public_pem.decode()), public_key])
    verifier = TokenVerifier(ADDON_KEY, provider, clock=clock)

    assert (
        await verifier.verify(signer.webhook_token(WORKSPACE_ID, ADDON_ID), TokenKind.WEBHOOK)
    ).addon_id == ADDON_ID


# The verification cache.


async def test_cache_hit_returns_the_same_claims_without_verifying_again(
    signer: TokenSigner, verifier: TokenVerifier, provider: CountingProvider
) -> None:
    token = signer.webhook_token(WORKSPACE_ID, ADDON_ID)

    first = await verifier.verify(token, TokenKind.WEBHOOK)
    provider.keys = []  # a second full verification would now fail
    second = await verifier.verify(token, TokenKind.WEBHOOK)

    assert second is first
    assert provider.calls == 1
    assert verifier.cached_tokens == 1


async def test_cache_serves_a_token_only_until_its_exp(
    signer: TokenSigner, verifier: TokenVerifier, provider: CountingProvider, clock: FakeClock
) -> None:
    token = signer.user_token(
        WORKSPACE_ID, ADDON_ID, user_id=USER_ID, backend_url=BACKEND_URL, reports_url=REPORTS_URL
    )
    await verifier.verify(token, TokenKind.USER)

    clock.now = NOW + 30 * 60 + 30  # exp plus leeway: still good, from the cache
    await verifier.verify(token, TokenKind.USER)
    assert provider.calls == 1

    clock.now += 1
    with pytest.raises(TokenInvalid, match=r"^token expired$"):
        await verifier.verify(token, TokenKind.USER)
    assert provider.calls == 1
    assert verifier.cached_tokens == 0


async def test_cached_token_still_meets_the_rules_of_the_kind_asked_for(
    signer: TokenSigner, verifier: TokenVerifier, provider: CountingProvider
) -> None:
    token = signer.webhook_token(WORKSPACE_ID, ADDON_ID)
    await verifier.verify(token, TokenKind.WEBHOOK)

    with pytest.raises(TokenInvalid, match=r"^user token must carry exp$"):
        await verifier.verify(token, TokenKind.USER)
    assert provider.calls == 1
    assert verifier.cached_tokens == 1  # still valid as the webhook token it is


async def test_cache_is_bounded_and_evicts_the_least_recently_used(
    signer: TokenSigner, provider: CountingProvider, clock: FakeClock
) -> None:
    verifier = TokenVerifier(ADDON_KEY, provider, clock=clock, cache_size=2)
    first, second, third = (signer.webhook_token(WORKSPACE_ID, f"addon-{n}") for n in range(3))

    await verifier.verify(first, TokenKind.WEBHOOK)
    await verifier.verify(second, TokenKind.WEBHOOK)
    await verifier.verify(first, TokenKind.WEBHOOK)  # first is now the most recent
    await verifier.verify(third, TokenKind.WEBHOOK)  # evicts second
    assert (verifier.cached_tokens, provider.calls) == (2, 3)

    await verifier.verify(first, TokenKind.WEBHOOK)
    assert provider.calls == 3
    await verifier.verify(second, TokenKind.WEBHOOK)
    assert provider.calls == 4


async def test_cache_can_be_disabled_and_cleared(
    signer: TokenSigner, provider: CountingProvider, clock: FakeClock
) -> None:
    token = signer.webhook_token(WORKSPACE_ID, ADDON_ID)
    uncached = TokenVerifier(ADDON_KEY, provider, clock=clock, cache_size=0)
    await uncached.verify(token, TokenKind.WEBHOOK)
    await uncached.verify(token, TokenKind.WEBHOOK)
    assert (uncached.cached_tokens, provider.calls) == (0, 2)

    cached = TokenVerifier(ADDON_KEY, provider, clock=clock)
    await cached.verify(token, TokenKind.WEBHOOK)
    cached.clear_cache()
    await cached.verify(token, TokenKind.WEBHOOK)
    assert provider.calls == 4


# Helpers.


async def test_ensure_workspace(signer: TokenSigner, verifier: TokenVerifier) -> None:
    claims = await verifier.verify(signer.webhook_token(WORKSPACE_ID, ADDON_ID), TokenKind.WEBHOOK)

    ensure_workspace(claims, WORKSPACE_ID)
    ensure_workspace(claims, WORKSPACE_ID, addon_id=ADDON_ID)
    with pytest.raises(WorkspaceMismatch, match="another workspace"):
        ensure_workspace(claims, "another-workspace")
    with pytest.raises(WorkspaceMismatch, match="another installation"):
        ensure_workspace(claims, WORKSPACE_ID, addon_id="another-installation")


def test_extract_bearer() -> None:
    assert extract_bearer("Bearer abc.def.ghi") == "abc.def.ghi"
    assert extract_bearer("  bearer   abc.def.ghi ") == "abc.def.ghi"
    with pytest.raises(Unauthorized) as missing:
        extract_bearer(None)
    assert not isinstance(missing.value, TokenInvalid)
    assert missing.value.headers == {"WWW-Authenticate": "Bearer"}
    for value in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "abc.def.ghi"):
        with pytest.raises(TokenInvalid):
            extract_bearer(value)


# Property: nothing but the token itself verifies, and refusals are always TokenInvalid.

_TOKEN_CHARS = string.ascii_letters + string.digits + "-_.=+/ !\x00é"

_mutation = st.one_of(
    st.tuples(st.just("replace"), st.integers(min_value=0), st.sampled_from(_TOKEN_CHARS)),
    st.tuples(st.just("insert"), st.integers(min_value=0), st.sampled_from(_TOKEN_CHARS)),
    st.tuples(st.just("delete"), st.integers(min_value=0), st.just("")),
    st.tuples(st.just("truncate"), st.integers(min_value=0), st.just("")),
)


def _mutate(token: str, mutations: list[tuple[str, int, str]]) -> str:
    for action, position, char in mutations:
        if not token:
            break
        at = position % len(token)
        if action == "replace":
            token = token[:at] + char + token[at + 1 :]
        elif action == "insert":
            token = token[:at] + char + token[at:]
        elif action == "delete":
            token = token[:at] + token[at + 1 :]
        else:
            token = token[:at]
    return token


_junk = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda raw: raw.decode("latin-1")),
    st.tuples(st.binary(max_size=64), st.binary(max_size=64), st.binary(max_size=300)).map(
        lambda parts: ".".join(b64url(part) for part in parts)
    ),
    st.tuples(
        st.dictionaries(
            st.sampled_from(["alg", "kid", "typ", "crit", "b64"]),
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(),
                st.text(max_size=8),
                st.sampled_from(["RS256", "none", "HS256"]),
            ),
        ),
        st.binary(max_size=64),
        st.binary(max_size=300),
    ).map(lambda parts: f"{b64url_json(parts[0])}.{b64url(parts[1])}.{b64url(parts[2])}"),
)


@pytest.fixture(scope="module")
def property_verifier(public_key: RSAPublicKey) -> TokenVerifier:
    return TokenVerifier(ADDON_KEY, StaticKeyProvider([public_key]), clock=FakeClock())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    candidate=st.one_of(
        st.lists(_mutation, min_size=1, max_size=3).map(lambda mutations: ("mutate", mutations)),
        _junk.map(lambda junk: ("junk", junk)),
    ),
    kind=st.sampled_from(TokenKind),
)
async def test_nothing_but_the_signed_token_verifies(
    candidate: tuple[str, Any],
    kind: TokenKind,
    signer: TokenSigner,
    property_verifier: TokenVerifier,
) -> None:
    valid = signer.sign(base_claims(exp=int(NOW) + 600, user=USER_ID))
    await property_verifier.verify(valid, kind)  # warm the cache with the genuine token
    source, detail = candidate
    token = _mutate(valid, detail) if source == "mutate" else detail
    if token == valid:
        return

    try:
        claims = await property_verifier.verify(token, kind)
    except TokenInvalid:
        return
    pytest.fail(f"a {source} token verified: {claims!r}")


# Property: a change to any byte of any segment is refused. Re-encoded canonically, the
# mutant passes the syntax checks and reaches the signature, unlike most text mutations.


def _b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


_byte_flip = st.tuples(
    st.sampled_from([0, 1, 2]), st.integers(min_value=0), st.integers(min_value=1, max_value=255)
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flips=st.lists(_byte_flip, min_size=1, max_size=3), kind=st.sampled_from(TokenKind))
async def test_a_token_with_any_byte_changed_never_verifies(
    flips: list[tuple[int, int, int]],
    kind: TokenKind,
    signer: TokenSigner,
    property_verifier: TokenVerifier,
) -> None:
    valid = signer.sign(base_claims(exp=int(NOW) + 600, user=USER_ID))
    await property_verifier.verify(valid, kind)  # the genuine token is cached
    segments = [bytearray(_b64url_decode(part)) for part in valid.split(".")]
    for segment, position, mask in flips:
        segments[segment][position % len(segments[segment])] ^= mask
    token = ".".join(b64url(bytes(part)) for part in segments)
    assume(token != valid)  # two flips of one byte may cancel out

    with pytest.raises(TokenInvalid):
        await property_verifier.verify(token, kind)
