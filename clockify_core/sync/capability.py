"""Sync as a capability: bootstrap, incremental sync, history backfill and reconcile jobs, the
scheduler that queues them, the sync API and the mirror settings on the manifest."""

from clockify_core.capability import Capability, Loop
from clockify_core.jobs.models import JobKind
from clockify_core.manifest.builder import SYNC_TAB, ManifestPart
from clockify_core.sync import jobs
from clockify_core.sync.models import SyncState
from clockify_core.sync.router import router
from clockify_core.sync.scheduler import scheduler_loop

SYNC = Capability(
    name="sync",
    routers=(router,),
    job_handlers={
        JobKind.BOOTSTRAP: jobs.bootstrap,
        JobKind.SYNC: jobs.sync,
        JobKind.BACKFILL: jobs.backfill,
        JobKind.RECONCILE: jobs.reconcile,
    },
    loops=(Loop("sync-scheduler", scheduler_loop, enabled=lambda settings: settings.sync.scheduler),),
    models=(SyncState,),
    settings=("sync", "http", "rate_limit"),
    metrics=("bootstrap_jobs_total", "sync_scheduled_total", "sync_scheduler_leader", "api_calls_total",
             "clockify_request_duration_seconds", "clockify_retries_total", "rate_limit_wait_seconds"),
    manifest=ManifestPart(tabs=(SYNC_TAB,)),
)
