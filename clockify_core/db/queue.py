"""The mechanics the kit's three leased queues share: the webhook inbox
(``webhooks/inbox.py``), jobs (``jobs/queue.py``) and flow runs (``flows/claims.py``).

Each queue is a table whose rows carry ``id``, ``status``, ``locked_by``, ``locked_until``
and ``attempts``, plus a column saying when a waiting row is next due. A row is due when it
waits and its time has come, or when it is leased but the lease ran out because its worker
died: being claimed again is how a queue recovers from that. A claim leases the row to one
worker and counts the attempt, in the same statement; PostgreSQL picks the rows with
``FOR UPDATE SKIP LOCKED`` (``db/dialect.py``), so concurrent claims never take one row. A
failed attempt waits a backoff with jitter; after the last one the row is dead-lettered.

What stays with each queue: which due rows a claim takes and in what order (the inbox keeps
an entity's events in order; jobs go by priority with room per workspace; flow runs count
an interrupted run's attempt), and what its rows record on success, failure and replay.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, or_


def backoff_seconds(attempts: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: about base·2^(n-1), never above cap."""
    rng = rng or random.Random()  # noqa: S311 - jitter, not security
    ideal = min(cap, base * 2.0 ** max(0, attempts - 1))
    return ideal / 2 + rng.random() * ideal / 2


def retry_delay(attempts: int, *, max_attempts: int, base: float, cap: float) -> float | None:
    """How long to wait before retrying after failed attempt number ``attempts``; None when
    that was the last allowed one and the row is to be dead-lettered."""
    if attempts >= max_attempts:
        return None
    return backoff_seconds(attempts, base=base, cap=cap)


@dataclass(frozen=True)
class LeasedQueue:
    """One queue table: its waiting and leased status values and its due-time column."""

    table: Table
    waiting: str
    running: str
    due_at: str

    def due(self, now: datetime) -> ColumnElement[bool]:
        """Waiting rows whose time has come, and leased rows whose lease ran out."""
        c = self.table.c
        return or_(
            and_(c.status == self.waiting, c[self.due_at] <= now),
            and_(c.status == self.running, c.locked_until < now),
        )

    def lease(self, worker_id: str, *, now: datetime, seconds: float) -> dict[str, Any]:
        """The values a claim sets: leased to ``worker_id`` until ``now + seconds``, one attempt more."""
        return {
            "status": self.running,
            "locked_by": worker_id,
            "locked_until": now + timedelta(seconds=seconds),
            "attempts": self.table.c.attempts + 1,
        }

    def held(self, row_id: int, worker_id: str) -> tuple[ColumnElement[bool], ...]:
        """The row, while ``worker_id`` still holds its lease (an update that matches nothing lost it)."""
        c = self.table.c
        return c.id == row_id, c.locked_by == worker_id, c.status == self.running

    @property
    def released(self) -> dict[str, Any]:
        return {"locked_by": None, "locked_until": None}

    def retry_at(self, when: datetime) -> dict[str, Any]:
        """Back to waiting until ``when`` (a failed attempt's backoff, a deferral)."""
        return {"status": self.waiting, self.due_at: when, **self.released}

    def given_back(self) -> dict[str, Any]:
        """Back to waiting untouched: the claim's attempt does not count (shutdown, a slice done)."""
        return {"status": self.waiting, **self.released, "attempts": self.table.c.attempts - 1}
