"""Retention as a capability: one leader purges what has outlived its window."""

from clockify_core.capability import Capability, Loop
from clockify_core.retention.service import retention_loop

RETENTION = Capability(
    name="retention",
    loops=(Loop("retention", retention_loop, enabled=lambda settings: settings.retention.enabled),),
    settings=("retention",),
    metrics=("retention_rows_deleted_total", "installation_loop_errors_total"),
)
