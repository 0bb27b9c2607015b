"""Logs are structured, and no token or secret survives into them."""

from __future__ import annotations

import io
import json
import logging

import structlog

from clockify_core.config import LoggingConfig
from clockify_core.observability.logging import REDACTED, configure_logging
from clockify_core.security.signing import KeyPair, TokenSigner
from clockify_core.testing.logs import captured_logs

SECRET = "s3cr3t-value-that-must-not-leak"


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_secrets_and_jwts_are_redacted_everywhere() -> None:
    stream = io.StringIO()
    configure_logging(LoggingConfig(level="DEBUG", format="json"), stream=stream)
    jwt = TokenSigner(KeyPair.generate().private_pem, "key").webhook_token("ws", "addon")
    log = structlog.get_logger("test")
    log.info(
        "webhook.accepted",
        authToken=SECRET,
        token=SECRET,
        api_key=SECRET,
        headers={"Authorization": f"Bearer {SECRET}", "X-Addon-Token": SECRET, "Clockify-Signature": SECRET,
                 "content-type": "application/json"},
        note=f"the token was {jwt} inside text",
        nested={"deep": [{"password": SECRET}]},
        count=3,
    )
    logging.getLogger("uvicorn.error").warning("stdlib line with %s", jwt)
    out = stream.getvalue()
    assert SECRET not in out
    assert jwt not in out
    assert jwt.split(".")[1] not in out
    # Only this test's lines: other loggers (aiosqlite's worker thread) may write at DEBUG too.
    first, second = [line for line in _lines(stream) if line.get("logger") in ("test", "uvicorn.error")]
    assert first["event"] == "webhook.accepted"
    assert first["authToken"] == REDACTED
    assert first["api_key"] == REDACTED
    assert first["headers"]["content-type"] == "application/json"
    assert first["count"] == 3
    assert "inside text" in str(first["note"])
    assert REDACTED in str(second["event"])


def test_bound_request_id_appears_in_lines() -> None:
    stream = io.StringIO()
    configure_logging(LoggingConfig(format="json"), stream=stream)
    structlog.contextvars.bind_contextvars(request_id="abc123")
    try:
        structlog.get_logger("t").info("thing.happened")
    finally:
        structlog.contextvars.clear_contextvars()
    assert next(line for line in _lines(stream) if line.get("logger") == "t")["request_id"] == "abc123"


def test_console_tracebacks_do_not_print_local_variables() -> None:
    def fail(api_secret_value: str) -> None:
        raise RuntimeError("boom")

    value = "-".join(["hunter2", "the", "local", "value"])  # the joined text is in no source line
    with captured_logs(LoggingConfig(format="console")) as stream:
        try:
            fail(value)
        except RuntimeError:
            structlog.get_logger("t").exception("job.failed")
    output = stream.getvalue()
    assert "RuntimeError: boom" in output
    assert "in fail" in output  # the frame is there ...
    assert "hunter2-the-local-value" not in output  # ... its locals are not
