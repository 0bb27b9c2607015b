"""Token verification, HMAC signatures and encryption at rest."""

from clockify_core.security.crypto import TokenCipher, digests_match, token_digest
from clockify_core.security.hmac import HmacVerifier, generate_secret, sign, signed_headers
from clockify_core.security.keys import KeyProvider, key_provider_from_config, load_public_key
from clockify_core.security.signing import KeyPair, TokenSigner
from clockify_core.security.tokens import ClockifyClaims, TokenKind, TokenVerifier, ensure_workspace

__all__ = [
    "ClockifyClaims", "HmacVerifier", "KeyPair", "KeyProvider", "TokenCipher", "TokenKind", "TokenSigner",
    "TokenVerifier", "digests_match", "ensure_workspace", "generate_secret", "key_provider_from_config",
    "load_public_key", "sign", "signed_headers", "token_digest",
]
