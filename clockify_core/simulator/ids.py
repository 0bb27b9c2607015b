"""ObjectId-shaped identifiers: 4-byte timestamp, 5-byte tag, 3-byte counter, as 24 hex.

The tag is derived from the seed, the workspace and the entity kind, so ids are
reproducible and an id alone tells which table row it names (the counter is the row).
"""

from __future__ import annotations

import hashlib

COUNTER_LIMIT = 1 << 24


def tag_for(seed: int, *parts: object) -> str:
    text = ":".join(str(p) for p in (seed, *parts))
    return hashlib.blake2b(text.encode(), digest_size=5).hexdigest()


def object_id(timestamp: int, tag: str, counter: int) -> str:
    return f"{timestamp & 0xFFFFFFFF:08x}{tag}{counter % COUNTER_LIMIT:06x}"


def split(oid: str) -> tuple[str, int] | None:
    """``(tag, counter)`` of a well-formed id, else None."""
    if len(oid) != 24:
        return None
    try:
        counter = int(oid[18:], 16)
        int(oid[:18], 16)
    except ValueError:
        return None
    return oid[8:18].lower(), counter


class IdFactory:
    """Sequential ids of one kind in one workspace."""

    def __init__(self, seed: int, *parts: object) -> None:
        self.tag = tag_for(seed, *parts)
        self.counter = 0

    def next(self, timestamp: int) -> str:
        oid = object_id(timestamp, self.tag, self.counter)
        self.counter += 1
        return oid
