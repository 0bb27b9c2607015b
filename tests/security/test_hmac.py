"""Standard Webhooks (HMAC-SHA256) signatures of custom webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac as std_hmac
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from clockify_core.errors import ConfigurationError, TokenInvalid, Unauthorized
from clockify_core.security.hmac import (
    HmacVerifier,
    Verified,
    generate_secret,
    secret_key,
    sign,
    signed_headers,
)

NOW = 1_767_225_600
SECRET = "whsec_" + base64.b64encode(b"current-secret-key-0123456789abc").decode()
OLD_SECRET = b"previous-secret-key-0123456789ab"
MSG = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
BODY = b'{"type":"invoice.paid","data":{"id":"evt_123"}}'

# The test vector of the Standard Webhooks reference libraries
# (libraries/go/webhook_test.go, TestWebhookSign).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

DOCS = Path(__file__).parents[2] / "docs" / "custom-webhooks.md"


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


def _verify(
    verifier: HmacVerifier,
    signature: str | None,
    *,
    body: bytes = BODY,
    webhook_id: str | None = MSG,
    timestamp: str | None = str(NOW),
) -> Verified:
    return verifier.verify(body, webhook_id=webhook_id, timestamp=timestamp, signature=signature)


def test_the_spec_test_vector() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    verifier = HmacVerifier([SPEC_SECRET], clock=FakeClock(SPEC_TIMESTAMP))

    verified = verifier.verify(
        SPEC_BODY, webhook_id=SPEC_ID, timestamp=str(SPEC_TIMESTAMP), signature=SPEC_SIGNATURE
    )

    assert verified == Verified(webhook_id=SPEC_ID, timestamp=SPEC_TIMESTAMP, secret_index=0)


def test_signature_follows_the_documented_scheme() -> None:
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    expected = std_hmac.new(key, f"{MSG}.{NOW}.".encode() + BODY, hashlib.sha256).digest()

    assert sign(SECRET, MSG, NOW, BODY) == "v1," + base64.b64encode(expected).decode()


def _docs_block(language: str) -> str:
    section = DOCS.read_text().split("## Worked example", 1)[1].split("\n## ", 1)[0]
    match = re.search(rf"```{language}\n(.*?)```", section, re.DOTALL)
    assert match, f"no {language} block in the worked example"
    return match.group(1)


def test_the_documented_python_example_computes_the_spec_signature() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _docs_block("python")], capture_output=True, text=True, check=True
    )

    assert f"webhook-signature: {SPEC_SIGNATURE}" in done.stdout.splitlines()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the shell example needs openssl")
def test_the_documented_shell_example_computes_the_spec_signature() -> None:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", _docs_block("bash")],
        capture_output=True,
        text=True,
        check=True,
    )

    assert f"webhook-signature: {SPEC_SIGNATURE}" in done.stdout.splitlines()


def test_signed_headers_carry_all_three_and_verify(verifier: HmacVerifier) -> None:
    headers = signed_headers(SECRET, BODY, NOW, webhook_id=MSG)

    assert headers == {
        "webhook-id": MSG,
        "webhook-timestamp": str(NOW),
        "webhook-signature": sign(SECRET, MSG, NOW, BODY),
    }
    fresh = signed_headers(SECRET, BODY, NOW)
    assert fresh["webhook-id"] != signed_headers(SECRET, BODY, NOW)["webhook-id"]
    assert (
        _verify(verifier, fresh["webhook-signature"], webhook_id=fresh["webhook-id"]).secret_index
        == 0
    )


def test_any_active_secret_verifies_and_the_match_is_reported(verifier: HmacVerifier) -> None:
    assert _verify(verifier, sign(SECRET, MSG, NOW, BODY)).secret_index == 0
    assert _verify(verifier, sign(OLD_SECRET, MSG, NOW, BODY)).secret_index == 1


def test_one_valid_entry_among_several_passes_and_other_versions_are_ignored(
    verifier: HmacVerifier,
) -> None:
    wrong = sign(b"an-unknown-secret-0123456789", MSG, NOW, BODY)
    good = sign(SECRET, MSG, NOW, BODY)
    # v1a is the spec's asymmetric (ed25519) scheme; its value is not an HMAC and must not be decoded as one.
    header = (
        f"v1a,{base64.b64encode(b'x' * 64).decode()} {wrong} v2,{good.removeprefix('v1,')}  {good}"
    )
    # Malformed entries do not spoil a valid one, as in the reference libraries.
    malformed = f"v1, v1,!!!! nocomma {good}"

    assert _verify(verifier, header).secret_index == 0
    assert _verify(verifier, malformed).secret_index == 0
    with pytest.raises(TokenInvalid, match=r"^signature does not match$"):
        _verify(verifier, f"{wrong} v2,{good.removeprefix('v1,')}")


def test_secret_forms() -> None:
    raw = b"k" * 24
    assert secret_key("whsec_" + base64.b64encode(raw).decode()) == raw
    assert (
        secret_key("whsec_" + base64.b64encode(raw + b"kk").decode().rstrip("=")) == raw + b"kk"
    )  # unpadded
    assert secret_key(SecretStr("whsec_" + base64.b64encode(raw).decode())) == raw
    assert secret_key(raw) == raw
    # Secrets chosen before sources used whsec_ ones: the key is the string's UTF-8 bytes.
    assert secret_key("legacy-secret-0123456789") == b"legacy-secret-0123456789"


def test_generated_secrets_are_whsec_with_32_random_bytes() -> None:
    first, second = generate_secret(), generate_secret()

    assert first.startswith("whsec_")
    assert len(secret_key(first)) == 32
    assert first != second


def test_empty_body_is_signed_like_any_other(verifier: HmacVerifier) -> None:
    assert _verify(verifier, sign(SECRET, MSG, NOW, b""), body=b"").secret_index == 0


GOOD = sign(SECRET, MSG, NOW, BODY)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        pytest.param({"body": BODY + b" "}, "signature does not match", id="body-changed"),
        pytest.param({"webhook_id": MSG + "x"}, "signature does not match", id="id-changed"),
        pytest.param(
            {"signature": sign(SECRET, MSG, NOW - 1, BODY)},
            "signature does not match",
            id="timestamp-changed",
        ),
        pytest.param(
            {"signature": sign(b"an-unknown-secret-0123456789", MSG, NOW, BODY)},
            "signature does not match",
            id="unknown-secret",
        ),
        pytest.param(
            {"signature": "v1," + base64.b64encode(bytes(32)).decode()},
            "signature does not match",
            id="zero-signature",
        ),
        pytest.param({"webhook_id": None}, "webhook-id header is missing", id="no-id"),
        pytest.param({"webhook_id": " "}, "webhook-id header is missing", id="blank-id"),
        pytest.param(
            {"webhook_id": "x" * 256},
            "webhook-id header must be 1-255 printable ASCII characters",
            id="long-id",
        ),
        pytest.param(
            {"webhook_id": "msg_é"},
            "webhook-id header must be 1-255 printable ASCII characters",
            id="non-ascii-id",
        ),
        pytest.param(
            {"webhook_id": "msg\x01"},
            "webhook-id header must be 1-255 printable ASCII characters",
            id="control-char-id",
        ),
        pytest.param({"timestamp": None}, "webhook-timestamp header is missing", id="no-timestamp"),
        pytest.param(
            {"timestamp": ""}, "webhook-timestamp header is missing", id="blank-timestamp"
        ),
        pytest.param(
            {"timestamp": f"{NOW}.5"},
            "webhook-timestamp header must be unix seconds",
            id="fraction",
        ),
        pytest.param(
            {"timestamp": "-1"}, "webhook-timestamp header must be unix seconds", id="negative"
        ),
        pytest.param(
            {"timestamp": "1.7e9"}, "webhook-timestamp header must be unix seconds", id="exponent"
        ),
        pytest.param(
            {"timestamp": "٣٤٥"},
            "webhook-timestamp header must be unix seconds",
            id="non-ascii-digits",
        ),
        pytest.param(
            {"timestamp": "9" * 13}, "webhook-timestamp header must be unix seconds", id="absurd"
        ),
        pytest.param({"signature": None}, "webhook-signature header is missing", id="no-signature"),
        pytest.param(
            {"signature": "  "}, "webhook-signature header is missing", id="blank-signature"
        ),
        pytest.param(
            {"signature": GOOD.removeprefix("v1,")},
            "webhook-signature entries must be <version>,<base64 signature>",
            id="no-version",
        ),
        pytest.param(
            {"signature": "sha256=" + "0" * 64},
            "webhook-signature entries must be <version>,<base64 signature>",
            id="old-scheme",
        ),
        pytest.param(
            {"signature": "," + GOOD.removeprefix("v1,")},
            "webhook-signature entries must be <version>,<base64 signature>",
            id="empty-version",
        ),
        pytest.param(
            {"signature": "v1a," + GOOD.removeprefix("v1,")},
            "webhook-signature header has no v1 signature",
            id="only-unknown-versions",
        ),
        pytest.param(
            {"signature": "v1," + "0" * 64},
            "webhook-signature v1 entries must be the base64 of a 32-byte HMAC-SHA256",
            id="hex-digest",
        ),
        pytest.param(
            {"signature": GOOD[:-2]},
            "webhook-signature v1 entries must be the base64 of a 32-byte HMAC-SHA256",
            id="truncated",
        ),
        pytest.param(
            {"signature": GOOD.replace("v1,", "v1,!")},
            "webhook-signature v1 entries must be the base64 of a 32-byte HMAC-SHA256",
            id="not-base64",
        ),
        pytest.param(
            {"signature": f"{sign(OLD_SECRET, MSG, NOW, BODY + b'x')} v1,"},
            "webhook-signature v1 entries must be the base64 of a 32-byte HMAC-SHA256",
            id="wrong-and-empty-v1",
        ),
    ],
)
def test_refusals_name_the_reason(
    changes: dict[str, Any], reason: str, verifier: HmacVerifier
) -> None:
    request: dict[str, Any] = {
        "body": BODY,
        "webhook_id": MSG,
        "timestamp": str(NOW),
        "signature": GOOD,
        **changes,
    }
    body = request.pop("body")

    with pytest.raises(TokenInvalid) as refused:
        verifier.verify(body, **request)

    assert refused.value.detail == reason
    assert isinstance(refused.value, Unauthorized)
    assert refused.value.status == 401


@pytest.mark.parametrize(
    ("sent_at", "reason"),
    [
        pytest.param(NOW - 300, None, id="oldest-accepted"),
        pytest.param(NOW + 300, None, id="newest-accepted"),
        pytest.param(NOW - 301, "webhook-timestamp is more than 300 s old", id="too-old"),
        pytest.param(NOW + 301, "webhook-timestamp is more than 300 s in the future", id="future"),
        pytest.param(0, "webhook-timestamp is more than 300 s old", id="epoch"),
    ],
)
def test_timestamp_tolerance_both_ways(
    sent_at: int, reason: str | None, verifier: HmacVerifier
) -> None:
    signature = sign(SECRET, MSG, sent_at, BODY)

    if reason is None:
        assert _verify(verifier, signature, timestamp=str(sent_at)).timestamp == sent_at
    else:
        with pytest.raises(TokenInvalid) as refused:
            _verify(verifier, signature, timestamp=str(sent_at))
        assert refused.value.detail == reason


def test_tolerance_is_configurable(clock: FakeClock) -> None:
    verifier = HmacVerifier([SECRET], tolerance_seconds=10, clock=clock)

    with pytest.raises(TokenInvalid, match="more than 10 s old"):
        _verify(verifier, sign(SECRET, MSG, NOW - 11, BODY), timestamp=str(NOW - 11))


def test_every_secret_is_compared_against_every_entry_in_constant_time(
    verifier: HmacVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[int] = []
    real = std_hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append(len(a))
        return real(a, b)

    monkeypatch.setattr(std_hmac, "compare_digest", spy)

    _verify(verifier, f"{GOOD} {sign(OLD_SECRET, MSG, NOW, BODY)}")

    assert compared == [32] * 4  # 2 secrets x 2 entries, although the first pair matched


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        pytest.param([], "at least one secret", id="none"),
        pytest.param(["short"], "at least 16 bytes", id="short"),
        pytest.param([SECRET, ""], "at least 16 bytes", id="one-empty"),
        pytest.param(
            ["whsec_" + base64.b64encode(b"k" * 15).decode()], "at least 16 bytes", id="short-whsec"
        ),
        pytest.param(
            ["whsec_not base64 at all!!"], "must be base64 after the prefix", id="whsec-not-base64"
        ),
        pytest.param(SECRET, "not a single secret", id="bare-string"),
    ],
)
def test_bad_secrets_are_a_configuration_error(secrets: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        HmacVerifier(secrets)


def test_tolerance_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="tolerance_seconds"):
        HmacVerifier([SECRET], tolerance_seconds=0)
