"""Loading public keys and following a JWKS endpoint (served by httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm

from clockify_core.config import SigningConfig
from clockify_core.errors import ConfigurationError
from clockify_core.security.keys import (
    CombinedKeyProvider,
    JwksKeyProvider,
    StaticKeyProvider,
    bundled_clockify_key,
    key_fingerprint,
    key_provider_from_config,
    load_public_key,
)
from clockify_core.security.signing import KeyPair, TokenSigner
from clockify_core.security.tokens import TokenKind, TokenVerifier

CLOCKIFY_KEY_SHA256 = "0cebc449014cf940ad0763e204b29b3a2263abfa1ccd298347c9bd2db2708b16"
JWKS_URL = "https://keys.example.test/.well-known/jwks.json"
ADDON_KEY = "time-mirror"


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class JwksServer:
    """The JWKS endpoint: serves ``keys`` (or fails as told) and counts requests."""

    def __init__(self, *keys: dict[str, Any]) -> None:
        self.keys: list[Any] = list(keys)
        self.requests = 0
        self.failure: str | None = None
        self.delay = 0.0

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        await asyncio.sleep(self.delay)
        assert str(request.url) == JWKS_URL
        if self.failure == "status":
            return httpx.Response(503, text="maintenance")
        if self.failure == "body":
            return httpx.Response(200, text="<html>not json</html>")
        if self.failure == "network":
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"keys": self.keys})


def pem_of(key: RSAPublicKey | ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def jwk(pair: KeyPair, kid: str | None, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = RSAAlgorithm.to_jwk(
        load_public_key(pair.public_pem.decode()), as_dict=True
    )
    if kid is not None:
        entry["kid"] = kid
    return entry | {"use": "sig", "alg": "RS256"} | extra


@pytest.fixture(scope="module")
def pair() -> KeyPair:
    return KeyPair.generate()


@pytest.fixture(scope="module")
def rotated() -> KeyPair:
    return KeyPair.generate()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(pair: KeyPair) -> JwksServer:
    return JwksServer(jwk(pair, "k1"))


@pytest.fixture
async def http_client(server: JwksServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(server.handler)) as client:
        yield client


@pytest.fixture
def jwks(http_client: httpx.AsyncClient, clock: FakeClock) -> JwksKeyProvider:
    return JwksKeyProvider(
        JWKS_URL, http_client, cache_seconds=3600, min_refresh_seconds=5, clock=clock
    )


def fingerprints(keys: list[RSAPublicKey]) -> list[str]:
    return [key_fingerprint(key) for key in keys]


def fingerprint_of(pair: KeyPair) -> str:
    return key_fingerprint(load_public_key(pair.public_pem.decode()))


# Loading keys.


def test_bundled_clockify_key_is_the_published_one() -> None:
    key = load_public_key()

    assert key is bundled_clockify_key()
    assert key.key_size == 2048
    assert key_fingerprint(key) == CLOCKIFY_KEY_SHA256


def test_pem_text_wins_over_path_which_wins_over_the_bundled_key(
    pair: KeyPair, rotated: KeyPair, tmp_path: Path
) -> None:
    key_file = tmp_path / "public.pem"
    key_file.write_bytes(rotated.public_pem)

    assert key_fingerprint(
        load_public_key(pair.public_pem.decode(), str(key_file))
    ) == fingerprint_of(pair)
    assert key_fingerprint(load_public_key(None, key_file)) == fingerprint_of(rotated)
    assert key_fingerprint(load_public_key("", "")) == CLOCKIFY_KEY_SHA256


@pytest.mark.parametrize(
    ("pem_text", "message"),
    [
        pytest.param("not a key", "public_key is not a valid PEM public key", id="junk"),
        pytest.param(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "public_key is not a valid PEM public key",
            id="bad-body",
        ),
    ],
)
def test_invalid_pem_is_a_configuration_error(pem_text: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_public_key(pem_text)

    assert refused.value.detail == message


def test_private_key_pem_is_refused(pair: KeyPair) -> None:
    with pytest.raises(ConfigurationError, match="not a valid PEM public key"):
        load_public_key(pair.private_pem.decode())


def test_non_rsa_key_is_refused() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1()).public_key()

    with pytest.raises(ConfigurationError, match="must be an RSA key"):
        load_public_key(pem_of(ec_key))


def test_short_rsa_key_is_refused() -> None:
    weak_private = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak key under test
    weak = weak_private.public_key()

    with pytest.raises(ConfigurationError, match="RSA-1024; at least RSA-2048"):
        load_public_key(pem_of(weak))


def test_unreadable_key_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_public_key(path=str(tmp_path / "missing.pem"))


# Providers built from settings.


async def test_config_without_jwks_gives_the_static_key(
    pair: KeyPair, rotated: KeyPair, tmp_path: Path
) -> None:
    key_file = tmp_path / "public.pem"
    key_file.write_bytes(rotated.public_pem)

    from_text = key_provider_from_config(
        SigningConfig(
            addon_key=ADDON_KEY, public_key=pair.public_pem.decode(), public_key_path=str(key_file)
        )
    )
    from_path = key_provider_from_config(
        SigningConfig(addon_key=ADDON_KEY, public_key_path=str(key_file))
    )
    bundled = key_provider_from_config(SigningConfig(addon_key=ADDON_KEY))

    assert isinstance(from_text, StaticKeyProvider)
    assert fingerprints(await from_text.get_keys(None)) == [fingerprint_of(pair)]
    assert fingerprints(await from_path.get_keys("any")) == [fingerprint_of(rotated)]
    assert fingerprints(await bundled.get_keys(None)) == [CLOCKIFY_KEY_SHA256]


async def test_config_with_jwks_offers_jwks_keys_then_the_static_key(
    pair: KeyPair, http_client: httpx.AsyncClient
) -> None:
    provider = key_provider_from_config(
        SigningConfig(addon_key=ADDON_KEY, jwks_url=JWKS_URL), http_client
    )

    assert isinstance(provider, CombinedKeyProvider)
    assert fingerprints(await provider.get_keys("k1")) == [
        fingerprint_of(pair),
        CLOCKIFY_KEY_SHA256,
    ]


def test_config_with_jwks_needs_an_http_client() -> None:
    with pytest.raises(ConfigurationError, match="no HTTP client"):
        key_provider_from_config(SigningConfig(addon_key=ADDON_KEY, jwks_url=JWKS_URL))


@pytest.mark.parametrize(
    "url", ["http://keys.example.test/jwks.json", "ftp://keys.example.test/jwks", "jwks.json"]
)
def test_jwks_must_be_fetched_over_https(url: str, http_client: httpx.AsyncClient) -> None:
    with pytest.raises(ConfigurationError, match="https"):
        JwksKeyProvider(url, http_client)


def test_jwks_over_plain_http_is_allowed_on_loopback(http_client: httpx.AsyncClient) -> None:
    JwksKeyProvider("http://127.0.0.1:8080/jwks.json", http_client)


# JWKS caching and rotation.


async def test_jwks_is_fetched_once_and_cached(
    jwks: JwksKeyProvider, server: JwksServer, pair: KeyPair, clock: FakeClock
) -> None:
    assert fingerprints(await jwks.get_keys("k1")) == [fingerprint_of(pair)]
    clock.now += 3599
    assert fingerprints(await jwks.get_keys("k1")) == [fingerprint_of(pair)]
    assert fingerprints(await jwks.get_keys(None)) == [fingerprint_of(pair)]

    assert server.requests == 1


async def test_jwks_is_refreshed_after_the_cache_lifetime(
    jwks: JwksKeyProvider, server: JwksServer, rotated: KeyPair, clock: FakeClock
) -> None:
    await jwks.get_keys("k1")
    server.keys = [jwk(rotated, "k2")]

    clock.now += 3600
    assert fingerprints(await jwks.get_keys(None)) == [fingerprint_of(rotated)]
    assert server.requests == 2


async def test_rotated_key_is_fetched_when_its_kid_appears(
    jwks: JwksKeyProvider, server: JwksServer, pair: KeyPair, rotated: KeyPair, clock: FakeClock
) -> None:
    verifier = TokenVerifier(ADDON_KEY, jwks, clock=lambda: 1_767_225_600.0)
    old = TokenSigner(pair.private_pem, ADDON_KEY).sign(_claims(), headers={"kid": "k1"})
    new = TokenSigner(rotated.private_pem, ADDON_KEY).sign(_claims(), headers={"kid": "k2"})
    await verifier.verify(old, TokenKind.WEBHOOK)

    server.keys = [jwk(pair, "k1"), jwk(rotated, "k2")]
    clock.now += 10  # well within the cache lifetime

    assert (await verifier.verify(new, TokenKind.WEBHOOK)).workspace_id == "ws-1"
    assert server.requests == 2


async def test_flood_of_unknown_kids_does_not_hammer_the_endpoint(
    jwks: JwksKeyProvider, server: JwksServer, clock: FakeClock
) -> None:
    await jwks.get_keys("k1")
    clock.now += 10

    for _ in range(200):
        assert await jwks.get_keys(uuid.uuid4().hex) == []
        clock.now += 0.01
    assert server.requests == 2  # the first unknown kid refetched; the rest waited

    clock.now += 5
    await jwks.get_keys(uuid.uuid4().hex)
    assert server.requests == 3


async def test_callers_during_a_fetch_wait_for_it_and_share_it(
    jwks: JwksKeyProvider, server: JwksServer, pair: KeyPair, rotated: KeyPair, clock: FakeClock
) -> None:
    await jwks.get_keys("k1")
    clock.now += 10
    server.keys = [jwk(pair, "k1"), jwk(rotated, "k2")]
    server.delay = 0.01  # every caller arrives while the fetch is in flight

    answers = await asyncio.gather(*(jwks.get_keys("k2") for _ in range(50)))

    assert all(fingerprints(keys) == [fingerprint_of(rotated)] for keys in answers)
    assert server.requests == 2


@pytest.mark.parametrize("failure", ["status", "body", "network"])
async def test_endpoint_failure_keeps_the_last_good_keys(
    failure: str, jwks: JwksKeyProvider, server: JwksServer, pair: KeyPair, clock: FakeClock
) -> None:
    await jwks.get_keys("k1")
    server.failure = failure
    clock.now += 3600

    assert fingerprints(await jwks.get_keys("k1")) == [fingerprint_of(pair)]
    assert server.requests == 2
    # Failed attempts are retried, but no more often than the refresh interval.
    assert fingerprints(await jwks.get_keys("k1")) == [fingerprint_of(pair)]
    assert server.requests == 2
    clock.now += 5
    server.failure = None
    server.keys = []  # an empty set is a failure too
    assert fingerprints(await jwks.get_keys("k1")) == [fingerprint_of(pair)]
    assert server.requests == 3


async def test_first_fetch_failing_gives_no_keys_then_recovers(
    jwks: JwksKeyProvider, server: JwksServer, pair: KeyPair, clock: FakeClock
) -> None:
    server.failure = "status"
    assert await jwks.get_keys("k1") == []

    server.failure = None
    clock.now += 5
    assert fingerprints(await jwks.get_keys("k1")) == [fingerprint_of(pair)]


async def test_jwks_entries_that_cannot_verify_rs256_are_skipped(
    server: JwksServer, jwks: JwksKeyProvider, pair: KeyPair, rotated: KeyPair
) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak key under test
    private_rotated = serialization.load_pem_private_key(rotated.private_pem, password=None)
    assert isinstance(private_rotated, rsa.RSAPrivateKey)
    server.keys = [
        jwk(pair, "good"),
        jwk(rotated, None),
        {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
        jwk(rotated, "encryption", use="enc"),
        jwk(rotated, "rs512", alg="RS512"),
        RSAAlgorithm.to_jwk(private_rotated, as_dict=True) | {"kid": "private"},
        RSAAlgorithm.to_jwk(weak.public_key(), as_dict=True) | {"kid": "weak"},
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        "not an object",
    ]

    assert fingerprints(await jwks.get_keys("good")) == [fingerprint_of(pair)]
    # A kid the set does not name is offered the keys published without one.
    for kid in ("ec", "encryption", "rs512", "private", "weak", "broken"):
        assert fingerprints(await jwks.get_keys(kid)) == [fingerprint_of(rotated)]
    assert sorted(fingerprints(await jwks.get_keys(None))) == sorted(
        [fingerprint_of(pair), fingerprint_of(rotated)]
    )


def _claims() -> dict[str, Any]:
    return {
        "iss": "clockify",
        "type": "addon",
        "sub": ADDON_KEY,
        "workspaceId": "ws-1",
        "addonId": "addon-1",
    }
