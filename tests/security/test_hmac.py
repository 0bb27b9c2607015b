"""HMAC-SHA256 signatures of custom webhooks."""

from __future__ import annotations

import hashlib
import hmac as std_hmac
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from clockify_core.errors import ConfigurationError, TokenInvalid, Unauthorized
from clockify_core.security.hmac import HmacVerifier, sign, signed_headers

NOW = 1_767_225_600
SECRET = "whsec-0123456789abcdef0123456789"
OLD_SECRET = b"whsec-previous-secret-0123456789"
BODY = b'{"event":"invoice.paid","id":"evt_123"}'


class FakeClock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def verifier(clock: FakeClock) -> HmacVerifier:
    return HmacVerifier([SECRET, OLD_SECRET], clock=clock)


def test_signature_follows_the_documented_scheme() -> None:
    expected = std_hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()

    assert sign(SECRET, BODY, NOW) == f"sha256={expected}"
    # Pinned against `printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$secret"`.
    assert sign("replace-with-your-secret-0123456", BODY, 1767225600) == (
        "sha256=9877966ce70e9991c747fb8471369b9ad69dfda9630c0b459961ac19edd8024d"
    )


def test_signed_request_verifies(verifier: HmacVerifier) -> None:
    assert verifier.verify(BODY, sign(SECRET, BODY, NOW), str(NOW)) == 0


def test_any_active_secret_verifies_and_the_match_is_reported(verifier: HmacVerifier) -> None:
    assert verifier.verify(BODY, sign(OLD_SECRET, BODY, NOW), str(NOW)) == 1


def test_secrets_may_be_secret_str_or_bytes(clock: FakeClock) -> None:
    verifier = HmacVerifier([SecretStr(SECRET)], clock=clock)

    assert verifier.verify(BODY, sign(SECRET.encode(), BODY, NOW), str(NOW)) == 0


def test_hex_case_and_surrounding_whitespace_do_not_matter(verifier: HmacVerifier) -> None:
    signature = sign(SECRET, BODY, NOW)
    upper = "SHA256=" + signature.removeprefix("sha256=").upper()

    assert verifier.verify(BODY, f"  {upper} ", f" {NOW}\t") == 0


def test_empty_body_is_signed_like_any_other(verifier: HmacVerifier) -> None:
    assert verifier.verify(b"", sign(SECRET, b"", NOW), str(NOW)) == 0


@pytest.mark.parametrize(
    ("body", "signature", "timestamp", "reason"),
    [
        pytest.param(
            BODY + b" ",
            sign(SECRET, BODY, NOW),
            str(NOW),
            "signature does not match",
            id="body-changed",
        ),
        pytest.param(
            BODY,
            sign(SECRET, BODY, NOW - 1),
            str(NOW),
            "signature does not match",
            id="timestamp-changed",
        ),
        pytest.param(
            BODY,
            sign("an-unknown-secret-0123456789", BODY, NOW),
            str(NOW),
            "signature does not match",
            id="unknown-secret",
        ),
        pytest.param(BODY, None, str(NOW), "X-Signature header is missing", id="no-signature"),
        pytest.param(BODY, "  ", str(NOW), "X-Signature header is missing", id="blank-signature"),
        pytest.param(
            BODY, sign(SECRET, BODY, NOW), None, "X-Timestamp header is missing", id="no-timestamp"
        ),
        pytest.param(
            BODY, sign(SECRET, BODY, NOW), "", "X-Timestamp header is missing", id="blank-timestamp"
        ),
        pytest.param(
            BODY,
            "sha1=" + "0" * 40,
            str(NOW),
            "X-Signature header must start with sha256=",
            id="sha1",
        ),
        pytest.param(
            BODY, "0" * 64, str(NOW), "X-Signature header must start with sha256=", id="no-prefix"
        ),
        pytest.param(
            BODY,
            "sha256=" + "0" * 63,
            str(NOW),
            "X-Signature header must carry 64 hex digits",
            id="short-hex",
        ),
        pytest.param(
            BODY,
            "sha256=" + "g" * 64,
            str(NOW),
            "X-Signature header must carry 64 hex digits",
            id="not-hex",
        ),
        pytest.param(
            BODY,
            sign(SECRET, BODY, NOW) + ",sha256=" + "0" * 64,
            str(NOW),
            "X-Signature header must carry 64 hex digits",
            id="two-signatures",
        ),
        pytest.param(
            BODY,
            sign(SECRET, BODY, NOW),
            f"{NOW}.5",
            "X-Timestamp header must be unix seconds",
            id="fraction",
        ),
        pytest.param(
            BODY,
            sign(SECRET, BODY, NOW),
            "-1",
            "X-Timestamp header must be unix seconds",
            id="negative",
        ),
        pytest.param(
            BODY,
            sign(SECRET, BODY, NOW),
            "1.7e9",
            "X-Timestamp header must be unix seconds",
            id="exponent",
        ),
        pytest.param(
            BODY,
            sign(SECRET, BODY, NOW),
            "٣٤٥",
            "X-Timestamp header must be unix seconds",
            id="non-ascii-digits",
        ),
        pytest.param(
            BODY,
            sign(SECRET, BODY, NOW),
            "9" * 13,
            "X-Timestamp header must be unix seconds",
            id="absurd",
        ),
    ],
)
def test_refusals_name_the_reason(
    body: bytes, signature: str | None, timestamp: str | None, reason: str, verifier: HmacVerifier
) -> None:
    with pytest.raises(TokenInvalid) as refused:
        verifier.verify(body, signature, timestamp)

    assert refused.value.detail == reason
    assert isinstance(refused.value, Unauthorized)
    assert refused.value.status == 401


@pytest.mark.parametrize(
    ("sent_at", "reason"),
    [
        pytest.param(NOW - 300, None, id="oldest-accepted"),
        pytest.param(NOW + 300, None, id="newest-accepted"),
        pytest.param(NOW - 301, "timestamp is too old", id="too-old"),
        pytest.param(NOW + 301, "timestamp is in the future", id="future"),
        pytest.param(0, "timestamp is too old", id="epoch"),
    ],
)
def test_timestamp_tolerance_both_ways(
    sent_at: int, reason: str | None, verifier: HmacVerifier
) -> None:
    signature = sign(SECRET, BODY, sent_at)

    if reason is None:
        assert verifier.verify(BODY, signature, str(sent_at)) == 0
    else:
        with pytest.raises(TokenInvalid) as refused:
            verifier.verify(BODY, signature, str(sent_at))
        assert refused.value.detail == reason


def test_tolerance_is_configurable(clock: FakeClock) -> None:
    verifier = HmacVerifier([SECRET], tolerance_seconds=10, clock=clock)

    with pytest.raises(TokenInvalid, match="too old"):
        verifier.verify(BODY, sign(SECRET, BODY, NOW - 11), str(NOW - 11))


def test_verify_request_reads_the_configured_headers_case_insensitively(clock: FakeClock) -> None:
    verifier = HmacVerifier(
        [SECRET], clock=clock, signature_header="X-Hub-Signature-256", timestamp_header="X-Hub-Time"
    )
    headers = signed_headers(
        SECRET, BODY, NOW, signature_header="X-Hub-Signature-256", timestamp_header="X-Hub-Time"
    )

    assert verifier.verify_request(BODY, httpx.Headers(headers)) == 0
    assert verifier.verify_request(BODY, {k.lower(): v for k, v in headers.items()}) == 0
    with pytest.raises(TokenInvalid, match=r"^X-Hub-Signature-256 header is missing$"):
        verifier.verify_request(BODY, {"x-hub-time": str(NOW)})


def test_every_secret_is_compared_in_constant_time(
    verifier: HmacVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[int] = []
    real = std_hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append(len(a))
        return real(a, b)

    monkeypatch.setattr(std_hmac, "compare_digest", spy)

    verifier.verify(BODY, sign(SECRET, BODY, NOW), str(NOW))

    assert compared == [32, 32]  # both secrets, even though the first matched


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        pytest.param([], "at least one secret", id="none"),
        pytest.param(["short"], "at least 16 bytes", id="short"),
        pytest.param([SECRET, ""], "at least 16 bytes", id="one-empty"),
        pytest.param(SECRET, "not a single secret", id="bare-string"),
    ],
)
def test_bad_secrets_are_a_configuration_error(secrets: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        HmacVerifier(secrets)


def test_tolerance_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="tolerance_seconds"):
        HmacVerifier([SECRET], tolerance_seconds=0)
