"""Reading Clockify bodies safely: JSON without NUL characters, and the id a body is stored under.

Used wherever a body arrives (the API client, the webhook receivers) and wherever it is
stored (the mirror, the inbox), so it sits at the base of the kit with no feature imports.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

Body = Mapping[str, Any]


def _strip_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, Mapping):
        return {_strip_nul(k): _strip_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strip_nul(v) for v in value]
    return value


def without_nul(body: Body) -> Body:
    """``body`` without NUL characters in its strings and keys (the same object when it has none).

    PostgreSQL's text and jsonb cannot store U+0000; a body holding one would fail every
    write of it, so the character is dropped, as Clockify's own UI never shows it.
    """
    # orjson writes U+0000 as this escape (keys too): a cheap test before the walk.
    return _strip_nul(body) if b"\\u0000" in orjson.dumps(body) else body


def loads_without_nul(raw: bytes) -> Any:
    """``orjson.loads(raw)`` with NUL removed as :func:`without_nul` does.

    Every body reaches the mirror through this or the webhook receiver (which cleans what
    it stores), so the test runs once per response on the raw bytes, not once per row.
    """
    data = orjson.loads(raw)
    return _strip_nul(data) if b"\\u0000" in raw else data


def _digest(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def entity_id(kind: str, body: Body, id_field: str = "id") -> str | None:
    """The id a body is stored under. Kinds without an id of their own get a stable key."""
    for field in (id_field, "id", "_id"):
        value = body.get(field)
        if isinstance(value, str) and value:
            return value
    if kind == "rate":
        modified = body.get("modifiedEntity") if isinstance(body.get("modifiedEntity"), Mapping) else {}
        assert isinstance(modified, Mapping)
        parts = [body.get("rateChangeSource"), modified.get("userId"), modified.get("targetId")]
        return ":".join(str(p) for p in parts if p) or None
    if kind == "balance":
        parts = [body.get("userId"), body.get("policyId")]
        return ":".join(str(p) for p in parts if p) or None
    if kind == "user_invitation":
        return _digest(body)
    return None
