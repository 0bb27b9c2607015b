"""One installation's failure inside a loop over installations: logged, counted, skipped.

The background loops that walk every installation (the sync scheduler, retention's purge
of uninstalled workspaces, the flow executor) handle each installation on its own: an
exception raised for one is logged as ``<loop>.installation_failed`` with the workspace
id, counted in ``installation_loop_errors_total{loop}`` and the loop goes on with the next
one. The label is the loop's name, never the workspace, so the series stay few.

A lost database connection is not one installation's fault: :func:`connection_lost`
tells the loops to let it end the round (they retry on their next tick) rather than
count every remaining installation as failed.
"""

from __future__ import annotations

from typing import Literal

import structlog
from sqlalchemy.exc import DBAPIError

from clockify_core.observability.metrics import Metrics

log = structlog.get_logger(__name__)

Loop = Literal["sync_scheduler", "retention", "flow_executor"]
LOOPS: tuple[Loop, ...] = ("sync_scheduler", "retention", "flow_executor")


def connection_lost(exc: BaseException) -> bool:
    """The database connection itself broke (the round fails as a whole and is retried)."""
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def installation_failed(metrics: Metrics, loop: Loop, workspace_id: str, **context: object) -> None:
    """Record the exception being handled as ``workspace_id``'s failure in ``loop``."""
    metrics.installation_loop_errors.labels(loop).inc()
    log.error(f"{loop}.installation_failed", workspace_id=workspace_id, exc_info=True, **context)
