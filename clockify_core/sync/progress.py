"""What a running pull shows: step, pages, rows, errors and an ETA.

Progress lives on the job row (``jobs.progress``, rendered by ``GET /api/status`` and
the ``jobs`` command) and in the ``job_rows``/``job_pages``/``job_errors``/
``job_eta_seconds`` gauges, plus ``job_endpoint{endpoint}`` set to 1 for the current
step. Counts are cumulative over the job's attempts, so a resumed job keeps them.
"""

from __future__ import annotations

import time
from typing import Any

from clockify_core.jobs.worker import JobContext
from clockify_core.observability.metrics import Metrics


class Progress:
    def __init__(self, ctx: JobContext, metrics: Metrics, *, flush_every: float = 1.0) -> None:
        self.ctx = ctx
        self.metrics = metrics
        self.flush_every = flush_every
        self.labels = (ctx.workspace_id, ctx.job.kind)
        stored = ctx.progress
        self.pages = int(stored.get("pages", 0))
        self.rows = int(stored.get("rows", 0))
        self.started_rows = self.rows  # rows of earlier attempts and slices
        self.errors = int(stored.get("errors", 0))
        # Rows a loader wrote by direct COPY and through the staging merge (sync.bulk).
        self.direct_rows = int(stored.get("direct_rows", 0))
        self.merged_rows = int(stored.get("merged_rows", 0))
        self._started = time.monotonic()
        self._start_fraction: float | None = None
        self._flushed = 0.0
        self._endpoint: str | None = None
        ctx.report(attempt=ctx.job.attempts)
        metrics.job_errors.labels(*self.labels).set(self.errors)

    def step(self, name: str, **extra: Any) -> None:
        self.ctx.report(endpoint=name, **extra)
        if name != self._endpoint:
            if self._endpoint is not None:
                self.metrics.forget(self.metrics.job_endpoint, *self.labels, self._endpoint)
            self._endpoint = name
            self.metrics.job_endpoint.labels(*self.labels, name).set(1)

    def page(self, rows: int = 0) -> None:
        self.pages += 1
        self.ctx.report(pages=self.pages)
        self.metrics.job_pages.labels(*self.labels).set(self.pages)

    def wrote(self, rows: int) -> None:
        self.rows += rows
        self.ctx.report(rows=self.rows)
        self.metrics.job_rows.labels(*self.labels).set(self.rows)

    def loaded(self, rows: int, *, direct: bool) -> None:
        """A PostgreSQL batch of ``rows`` went in by direct COPY or through the staging merge."""
        if direct:
            self.direct_rows += rows
            self.ctx.report(direct_rows=self.direct_rows)
        else:
            self.merged_rows += rows
            self.ctx.report(merged_rows=self.merged_rows)

    def error(self, message: str) -> None:
        self.errors += 1
        self.ctx.report(errors=self.errors, last_error=message[:300])
        self.metrics.job_errors.labels(*self.labels).set(self.errors)

    def fraction(self, done: float, total: float) -> None:
        """Work done out of ``total`` units (windows, endpoints); sets the ETA from this attempt's pace."""
        if total <= 0:
            return
        f = min(1.0, max(0.0, done / total))
        if self._start_fraction is None:
            self._start_fraction = f
        self.ctx.report(done=round(done, 3), total=round(total, 3), percent=round(100 * f, 1))
        gained = f - self._start_fraction
        if gained > 0:
            eta = (time.monotonic() - self._started) * (1 - f) / gained
            self.ctx.report(eta_seconds=round(eta, 1))
            self.metrics.job_eta.labels(*self.labels).set(eta)

    async def flush(self, *, force: bool = False) -> None:
        """Store progress on the job row, at most every ``flush_every`` seconds unless forced."""
        now = time.monotonic()
        if force or now - self._flushed >= self.flush_every:
            self._flushed = now
            await self.ctx.checkpoint()

    def close(self) -> None:
        self.ctx.report(eta_seconds=0)
        for gauge in (self.metrics.job_rows, self.metrics.job_pages, self.metrics.job_eta, self.metrics.job_errors):
            self.metrics.forget(gauge, *self.labels)
        if self._endpoint is not None:
            self.metrics.forget(self.metrics.job_endpoint, *self.labels, self._endpoint)
            self._endpoint = None
