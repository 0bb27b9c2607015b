"""Run something once a session's transaction has committed, and not if it rolls back.

A handler that queues work wakes the worker that takes it (``runtime.jobs_wakeup``,
``runtime.inbox_wakeup``). Woken before the commit, the worker looks, finds nothing it
can see yet, and sleeps a whole poll interval: the wake-up has to follow the commit.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

_PENDING = "clockify_core.after_commit"


def after_commit(session: AsyncSession | Session, callback: Callable[[], object]) -> None:
    """Call ``callback`` right after the session's current transaction commits.

    Dropped if the transaction rolls back. Savepoints (``begin_nested``) neither run nor
    drop it: only the outermost transaction decides. With no transaction open there is
    nothing to wait for, so it is called at once. Callbacks run inside ``commit()`` and must not
    raise (setting an ``asyncio.Event`` is what they are for).
    """
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    if not sync.in_transaction():
        callback()
        return
    pending: list[Callable[[], object]] | None = sync.info.get(_PENDING)
    if pending is None:
        pending = sync.info[_PENDING] = []
        event.listen(sync, "after_commit", _run)
        event.listen(sync, "after_rollback", _drop)
    pending.append(callback)


def _run(sync: Session) -> None:
    if sync.in_nested_transaction():  # a savepoint was released; the transaction goes on
        return
    pending: list[Callable[[], object]] = sync.info[_PENDING]
    callbacks = list(pending)
    pending.clear()
    for callback in callbacks:
        callback()


def _drop(sync: Session) -> None:
    if sync.in_nested_transaction():
        return
    sync.info[_PENDING].clear()
