"""Key rotation: after `rotate-secrets`, every stored secret opens with the new key alone."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from clockify_core.db import create_engine, create_session_factory
from clockify_core.errors import ConfigurationError
from clockify_core.flows.models import Flow
from clockify_core.installations.models import Installation, WebhookSubscription
from clockify_core.security.crypto import TokenCipher
from clockify_core.webhooks.models import CustomWebhookSource

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


async def test_rotate_secrets_command(pg_url: str) -> None:
    old = TokenCipher(OLD)
    engine = create_engine(pg_url)
    sessions = create_session_factory(engine)
    try:
        async with sessions.begin() as s:
            s.add(Installation(workspace_id="ws", addon_id="a", status="ACTIVE", auth_token_encrypted=old.encrypt("install-tok")))
            await s.flush()
            s.add(WebhookSubscription(workspace_id="ws", event_type="NEW_TAG", path="/webhooks/new-tag", source="MANIFEST",
                                      token_encrypted=old.encrypt("hook-tok"), token_digest="d"))
            s.add(CustomWebhookSource(id="src", workspace_id="ws", name="n",
                                      secrets_encrypted=old.encrypt(orjson.dumps(["hmac-secret-0123456789"]).decode())))
            s.add(Flow(id="f1", workspace_id="ws", name="f", trigger={"events": ["NEW_TAG"]},
                       actions=[{"type": "http_request", "headers": {"X-Key": {"secret_encrypted": old.encrypt("flow-secret")},
                                                                    "Accept": "application/json"}}]))
        env = {"CLOCKIFY_DB_URL": pg_url, "CLOCKIFY_ENCRYPTION_KEY": f"{NEW},{OLD}", "CLOCKIFY_RUN_MIGRATIONS": "false"}
        import os

        result = subprocess.run([sys.executable, "-m", "clockify_addon", "rotate-secrets"], env={**os.environ, **env},
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert "installations=1 webhook_subscriptions=1 custom_webhook_sources=1 flows=1" in result.stdout

        new_only = TokenCipher(NEW)
        async with sessions() as s:
            inst = await s.get(Installation, "ws")
            sub = await s.scalar(select(WebhookSubscription))
            src = await s.get(CustomWebhookSource, "src")
            flow = await s.get(Flow, "f1")
        assert new_only.decrypt(inst.auth_token_encrypted) == "install-tok"
        assert new_only.decrypt(sub.token_encrypted) == "hook-tok"
        assert orjson.loads(new_only.decrypt(src.secrets_encrypted)) == ["hmac-secret-0123456789"]
        assert new_only.decrypt(flow.actions[0]["headers"]["X-Key"]["secret_encrypted"]) == "flow-secret"
        assert flow.actions[0]["headers"]["Accept"] == "application/json"
        with pytest.raises(ConfigurationError):
            TokenCipher(OLD).decrypt(inst.auth_token_encrypted)
    finally:
        await engine.dispose()
