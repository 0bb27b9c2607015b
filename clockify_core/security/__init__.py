"""Token verification, HMAC signatures and encryption at rest."""
