"""Masking a flow's secrets in whatever of a run is stored or shown (docs/flows.md, "Secrets")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from clockify_core.errors import ClockifyError
from clockify_core.flows.actions import Action, HttpRequestAction, SecretHeader, mask
from clockify_core.openapi.models import ApiCall


def flow_secrets(actions: tuple[Action, ...], decrypt: Callable[[str], str]) -> list[str]:
    """The plain values of every secret header of the flow's actions."""
    secrets: list[str] = []
    for action in actions:
        if not isinstance(action, HttpRequestAction):
            continue
        for value in action.headers.values():
            if not isinstance(value, SecretHeader):
                continue
            try:
                plain = value.plain if value.plain is not None else decrypt(value.encrypted or "")
            except ClockifyError:
                continue  # the action that needs it fails and says why; this one is never sent
            secrets.append(plain)
    # Longest first, so a secret that contains another is masked whole.
    return sorted(set(secrets), key=len, reverse=True)


def masked(value: Any, secrets: list[str]) -> Any:
    """``value`` (plain JSON) with every secret replaced by the mask, keys included."""
    if not secrets:
        return value
    if isinstance(value, str):
        return mask(value, secrets)
    if isinstance(value, list):
        return [masked(item, secrets) for item in value]
    if isinstance(value, dict):
        return {mask(str(key), secrets): masked(item, secrets) for key, item in value.items()}
    return value


def mask_call(call: ApiCall, secrets: list[str]) -> ApiCall:
    # A path or error may carry a value a flow variable took from a response that echoed a secret.
    call.path = mask(call.path, secrets)
    if call.error is not None:
        call.error = mask(call.error, secrets)
    return call


def stored_state(state: dict[str, Any], secrets: list[str]) -> Any:
    """The state as stored: plain JSON (variables hold whatever a response contained) with the
    flow's secrets masked. A run resumed from it sees the mask where a secret was."""
    return masked(orjson.loads(orjson.dumps(state, default=str)), secrets)
