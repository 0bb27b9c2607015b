"""Encryption at rest for installation and webhook tokens and flow secrets.

Fernet (AES-128-CBC + HMAC-SHA256) under keys derived from the configured
``ENCRYPTION_KEY``. Several comma-separated keys rotate: the first encrypts, all decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from clockify_core.errors import ConfigurationError


def _fernet_key(secret: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(secret.encode())
        if len(raw) == 32:
            return secret.encode()
    except ValueError:
        pass
    # Any other string is stretched into a key; it still has to be long and random.
    return base64.urlsafe_b64encode(hashlib.sha256(b"clockify-addons/v1:" + secret.encode()).digest())


class TokenCipher:
    def __init__(self, keys: SecretStr | str) -> None:
        text = keys.get_secret_value() if isinstance(keys, SecretStr) else keys
        parts = [part.strip() for part in text.split(",") if part.strip()]
        if not parts:
            raise ConfigurationError("ENCRYPTION_KEY is empty")
        self._fernet = MultiFernet([Fernet(_fernet_key(part)) for part in parts])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise ConfigurationError("Stored secret cannot be decrypted with the configured ENCRYPTION_KEY") from exc

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt under the first key."""
        return self._fernet.rotate(ciphertext.encode()).decode()


def token_digest(token: str) -> str:
    """SHA-256 hex of a token: an index key that reveals nothing about the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def digests_match(presented: str, stored_digest: str) -> bool:
    return hmac.compare_digest(token_digest(presented), stored_digest)
