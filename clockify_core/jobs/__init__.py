"""The job queue (bootstrap, sync, webhook registration...): claimed, leased, retried, resumable."""

from clockify_core.jobs.capability import JOBS

__all__ = ["JOBS"]
