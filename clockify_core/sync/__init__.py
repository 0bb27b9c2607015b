"""Pulling Clockify into the mirror: bootstrap, incremental sync, backfill, the scheduler.

``jobs`` holds the job handlers, ``scheduler`` the leader-elected loop that queues syncs,
``timeentries``/``reference`` what is pulled, ``fetch``/``sink``/``bulk`` how (pages in,
batched COPY transactions out), ``router``/``cli`` the operator surface. docs/sync.md
describes the behaviour and settings.
"""

from clockify_core.sync.capability import SYNC

__all__ = ["SYNC"]
