"""The job queue's workers as a capability: any capability's ``job_handlers`` run on them."""

from clockify_core.capability import Capability, Loop
from clockify_core.jobs.models import Job
from clockify_core.jobs.worker import job_loop, run_one
from clockify_core.runtime import Runtime


async def _run_due(runtime: Runtime) -> None:
    while await run_one(runtime):
        pass


JOBS = Capability(
    name="jobs",
    loops=(Loop("jobs", job_loop, copies=lambda settings: settings.worker.job_concurrency),),
    drain=_run_due,
    models=(Job,),
    settings=("worker",),
    metrics=("jobs_total", "job_rows", "job_pages", "job_eta_seconds", "job_errors", "job_endpoint"),
)
