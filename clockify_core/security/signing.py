"""Minting Clockify-shaped tokens with a development RSA key.

Clockify signs with its own private key; the simulator and tests sign with a
development key pair whose public half the services load through their
``PUBLIC_KEY``/``PUBLIC_KEY_PATH`` setting. Claim sets follow docs/clockify.md#claims.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

USER_TOKEN_TTL_SECONDS = 30 * 60


@dataclass(frozen=True)
class KeyPair:
    private_pem: bytes
    public_pem: bytes

    @classmethod
    def generate(cls, bits: int = 2048) -> KeyPair:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(private_pem, public_pem)

    @classmethod
    def load_or_create(cls, directory: Path) -> KeyPair:
        """Read ``dev-private.pem``/``dev-public.pem`` from ``directory``, creating them once."""
        private_path, public_path = directory / "dev-private.pem", directory / "dev-public.pem"
        if private_path.is_file() and public_path.is_file():
            return cls(private_path.read_bytes(), public_path.read_bytes())
        pair = cls.generate()
        directory.mkdir(parents=True, exist_ok=True)
        private_path.write_bytes(pair.private_pem)
        private_path.chmod(0o600)
        public_path.write_bytes(pair.public_pem)
        return pair


class TokenSigner:
    """Signs the four Clockify token kinds for one add-on key."""

    def __init__(self, private_pem: bytes, addon_key: str, *, clock: Any = time.time) -> None:
        self._key = serialization.load_pem_private_key(private_pem, password=None)
        self.addon_key = addon_key
        self._clock = clock

    def sign(self, claims: Mapping[str, Any], *, headers: Mapping[str, Any] | None = None) -> str:
        return jwt.encode(dict(claims), self._key, algorithm="RS256", headers=dict(headers or {}))  # type: ignore[arg-type]

    def _base(self, workspace_id: str, addon_id: str) -> dict[str, Any]:
        return {
            "iss": "clockify",
            "type": "addon",
            "sub": self.addon_key,
            "workspaceId": workspace_id,
            "addonId": addon_id,
        }

    def installation_token(
        self,
        workspace_id: str,
        addon_id: str,
        *,
        user_id: str,
        backend_url: str,
        reports_url: str,
        pto_url: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        claims = self._base(workspace_id, addon_id) | {
            "user": user_id,
            "backendUrl": backend_url,
            "reportsUrl": reports_url,
        }
        if pto_url:
            claims["ptoUrl"] = pto_url
        return self.sign(claims | dict(extra or {}))

    def user_token(
        self,
        workspace_id: str,
        addon_id: str,
        *,
        user_id: str,
        backend_url: str,
        reports_url: str,
        pto_url: str | None = None,
        workspace_role: str = "OWNER",
        theme: str = "DEFAULT",
        language: str = "EN",
        ttl_seconds: int = USER_TOKEN_TTL_SECONDS,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        now = int(self._clock())
        claims = self._base(workspace_id, addon_id) | {
            "user": user_id,
            "backendUrl": backend_url,
            "reportsUrl": reports_url,
            "workspaceRole": workspace_role,
            "theme": theme,
            "language": language,
            "iat": now,
            "exp": now + ttl_seconds,
        }
        if pto_url:
            claims["ptoUrl"] = pto_url
        return self.sign(claims | dict(extra or {}))

    def webhook_token(self, workspace_id: str, addon_id: str, *, extra: Mapping[str, Any] | None = None) -> str:
        # Webhook tokens carry the reduced claim set and never expire.
        return self.sign(self._base(workspace_id, addon_id) | dict(extra or {}))

    def lifecycle_token(
        self, workspace_id: str, addon_id: str, *, ttl_seconds: int = 300, extra: Mapping[str, Any] | None = None
    ) -> str:
        # Every lifecycle call gets its own token: the jti keeps two calls signed within one
        # second from being byte-identical, since the add-on accepts each token only once.
        now = int(self._clock())
        claims = {"iat": now, "exp": now + ttl_seconds, "jti": uuid.uuid4().hex}
        return self.sign(self._base(workspace_id, addon_id) | claims | dict(extra or {}))
