"""How a flow's secret header value is stored: the one spelling every reader and writer uses.

A client sends ``{"secret": value}``; the server stores ``{"secret_encrypted": <token>}``
(docs/flows.md, "Secrets") and nothing else does. Saving a flow, compiling it, showing it
masked and re-encrypting under a new key (``rotate-secrets``) all recognise the stored form
through :func:`is_stored_secret`, so a value one of them treats as a secret is one for all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeGuard

SECRET_KEY: Final = "secret_encrypted"  # noqa: S105 - a JSON member name, part of the stored flow format


def stored_secret(encrypted: str) -> dict[str, str]:
    """The stored form of a header whose value the cipher encrypted to ``encrypted``."""
    return {SECRET_KEY: encrypted}


def is_stored_secret(value: object) -> TypeGuard[dict[str, str]]:
    """Whether a stored header value is an encrypted secret: exactly ``{"secret_encrypted": <text>}``."""
    return isinstance(value, dict) and set(value) == {SECRET_KEY} and isinstance(value[SECRET_KEY], str)


def reencrypt(actions: list[dict[str, Any]], rotate: Callable[[str], str]) -> tuple[list[dict[str, Any]], int]:
    """The stored actions with every secret header passed through ``rotate``; and how many there were."""
    count = 0
    rotated = []
    for action in actions:
        headers = action.get("headers")
        if isinstance(headers, dict):
            new_headers = {}
            for name, value in headers.items():
                if is_stored_secret(value):
                    value = stored_secret(rotate(value[SECRET_KEY]))
                    count += 1
                new_headers[name] = value
            action = {**action, "headers": new_headers}
        rotated.append(action)
    return rotated, count
