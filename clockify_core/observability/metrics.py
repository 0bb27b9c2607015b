"""Prometheus metrics in a registry per app, so every app (and every test) starts at zero.

Capabilities receive the app's :class:`Metrics` as an argument and record on its
attributes; nothing registers into the global default registry.

Under gunicorn every worker is a process with its own memory, so a scrape would see the
one worker that answered it. With ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus_client
stores every sample in per-process files in that directory and :meth:`Metrics.render`
merges all of them (``MultiProcessCollector``): counters and histograms add up across
workers, and each gauge says how its workers' values combine (``multiprocess_mode``).
``clockify_core.gunicorn_conf`` empties the directory when the server starts and drops
the live gauges of a worker that exits. See docs/DEPLOYMENT.md ("Metrics").
"""

from __future__ import annotations

import glob
import math
import os
import time
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UPTIME = "addon_uptime_seconds"
UPTIME_HELP = "Seconds since the app started (with several workers: since the oldest live one started)"
START_TIME = "addon_start_time_seconds"


def multiprocess_dir() -> str | None:
    """The directory worker processes share their samples through, when multiprocess mode is on.

    prometheus_client picks its value store once, when it is first imported, from
    ``PROMETHEUS_MULTIPROC_DIR`` (``prometheus_client.values.ValueClass``); this follows
    that decision rather than the variable's current value.
    """
    if not getattr(values.ValueClass, "_multiprocess", False):
        return None
    return os.environ.get(MULTIPROC_ENV) or None


def reset_multiprocess_dir(path: str) -> None:
    """Create ``path`` and remove the sample files of an earlier server (gunicorn's ``on_starting``)."""
    os.makedirs(path, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):
        os.remove(stale)


def mark_worker_dead(pid: int, path: str) -> None:
    """Forget the live gauges of an exited worker; its counters and histograms stay in the sums."""
    multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]  # prometheus_client is untyped here


class _MergedView:
    """Every process's samples (``MultiProcessCollector``), with two fixes for what files cannot hold.

    * ``Gauge.set_function`` has no file representation, so the uptime is derived at scrape
      time from the oldest live worker's start time.
    * A series cannot be deleted from another process's file, so :meth:`Metrics.forget`
      writes NaN and this view leaves NaN gauge samples out.
    """

    def __init__(self, path: str) -> None:
        self._inner = multiprocess.MultiProcessCollector(None, path)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterator[Metric]:
        started: float | None = None
        for metric in self._inner.collect():  # type: ignore[no-untyped-call]
            if metric.type == "gauge":
                metric.samples = [s for s in metric.samples if not math.isnan(s.value)]
                if metric.name == START_TIME and metric.samples:
                    started = min(s.value for s in metric.samples)
            yield metric
        if started is not None:
            yield GaugeMetricFamily(UPTIME, UPTIME_HELP, value=max(0.0, time.time() - started))


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, service: str = "service") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess_dir = multiprocess_dir()
        if self.multiprocess_dir:
            # A `worker` process outside gunicorn: nobody has created the directory yet.
            os.makedirs(self.multiprocess_dir, exist_ok=True)
        r = self.registry
        started = time.monotonic()
        self.start_time = Gauge(
            START_TIME, "Unix time the app started (with several workers: the oldest live one)",
            multiprocess_mode="livemin", registry=r,
        )
        self.start_time.set(time.time())
        if self.multiprocess_dir is None:
            self.uptime: Gauge | None = Gauge(UPTIME, UPTIME_HELP, registry=r)
            self.uptime.set_function(lambda: time.monotonic() - started)
        else:
            self.uptime = None  # derived from addon_start_time_seconds when scraped (_MergedView)
        self.info = Gauge(
            "addon_info", "Static service information", ["service"], multiprocess_mode="livemax", registry=r
        )
        self.info.labels(service=service).set(1)

        # HTTP server side.
        self.http_requests = Counter(
            "http_requests_total", "HTTP requests served", ["route", "method", "status"], registry=r
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds", "Time to serve a request", ["route", "method"],
            buckets=LATENCY_BUCKETS, registry=r,
        )

        # Webhooks and the inbox.
        self.webhooks_received = Counter(
            "webhooks_received_total", "Webhook deliveries by event type and outcome",
            ["event_type", "outcome"], registry=r,
        )
        self._webhook_children: dict[tuple[str, str], Counter] = {}
        # Every worker counts the same table: the latest count is the truth.
        self.inbox_depth = Gauge(
            "inbox_depth", "Inbox rows by status", ["status"], multiprocess_mode="livemostrecent", registry=r
        )
        self.inbox_processing = Histogram(
            "inbox_processing_seconds", "Time from receipt to applied", buckets=(*LATENCY_BUCKETS, 30.0, 120.0),
            registry=r,
        )
        self.inbox_batch_size = Histogram(
            "inbox_group_commit_events", "Webhook events written per group-commit transaction",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500), registry=r,
        )
        self.inbox_dead_letters = Counter(
            "inbox_dead_letters_total", "Events moved to dead-letter", ["event_type"], registry=r
        )

        # Outbound Clockify calls.
        self.api_calls = Counter("api_calls_total", "Clockify API calls by status", ["status"], registry=r)
        self.api_call_duration = Histogram(
            "clockify_request_duration_seconds", "Clockify API call latency", ["api"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.api_retries = Counter("clockify_retries_total", "Retried Clockify calls", ["reason"], registry=r)
        self.rate_limit_wait = Histogram(
            "rate_limit_wait_seconds", "Time spent waiting for the rate limiter", buckets=LATENCY_BUCKETS,
            registry=r,
        )

        # Pull side. A job runs in one worker at a time: its latest figures are the truth.
        self.bootstrap_jobs = Counter("bootstrap_jobs_total", "Bootstrap jobs by final status", ["status"], registry=r)
        self.jobs = Counter("jobs_total", "Jobs by kind and final status", ["kind", "status"], registry=r)
        job_labels = ["workspace_id", "kind"]
        self.job_rows = Gauge(
            "job_rows", "Rows written by the running job", job_labels, multiprocess_mode="livemostrecent", registry=r
        )
        self.job_pages = Gauge(
            "job_pages", "Pages fetched by the running job", job_labels, multiprocess_mode="livemostrecent", registry=r
        )
        self.job_eta = Gauge(
            "job_eta_seconds", "Estimated seconds left", job_labels, multiprocess_mode="livemostrecent", registry=r
        )
        self.job_errors = Gauge(
            "job_errors", "Errors (retried pages, skipped endpoints) of the running job", job_labels,
            multiprocess_mode="livemostrecent", registry=r,
        )
        # 1 for the step the running job is on: one series per job; endpoints are the bounded
        # set of mirror kinds plus "reference".
        self.job_endpoint = Gauge(
            "job_endpoint", "Endpoint (mirror kind) the running job is pulling", [*job_labels, "endpoint"],
            multiprocess_mode="livemostrecent", registry=r,
        )
        self.rows_upserted = Counter("mirror_rows_written_total", "Mirror rows written", ["table", "source"], registry=r)
        self.sync_scheduled = Counter("sync_scheduled_total", "Sync jobs queued by the scheduler", registry=r)
        # Summed over an instance's workers: 1 on the instance that leads, 0 elsewhere.
        self.scheduler_leader = Gauge(
            "sync_scheduler_leader", "1 while this instance leads the scheduler", multiprocess_mode="livesum",
            registry=r,
        )

        # Flows.
        self.flows_executed = Counter("flows_executed_total", "Flow runs by status", ["status"], registry=r)
        self.flow_action_duration = Histogram(
            "flow_action_duration_seconds", "Flow action latency", ["action"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.flow_evaluations = Counter(
            "flow_evaluations_total", "Flow conditions evaluated, by result (matched, unmatched, error)", ["result"],
            registry=r,
        )

        # Retention.
        self.retention_deleted = Counter(
            "retention_rows_deleted_total", "Rows removed by retention", ["table"], registry=r
        )

        # Loops over installations skip one that fails (observability/isolation.py); loop, never workspace.
        self.installation_loop_errors = Counter(
            "installation_loop_errors_total", "Installations a background loop skipped after an error", ["loop"],
            registry=r,
        )

    def webhook_received(self, event_type: str, outcome: str) -> None:
        """Count one delivery in ``webhooks_received_total``.

        The labelled children are kept: ``labels()`` takes a lock and builds its key on
        every call, a visible cost on the webhook route. Both labels come from closed sets
        (catalog event types, receiver outcomes), so the dict stays small.
        """
        key = (event_type, outcome)
        child = self._webhook_children.get(key)
        if child is None:
            child = self._webhook_children[key] = self.webhooks_received.labels(event_type, outcome)
        child.inc()

    def forget(self, gauge: Gauge, *labelvalues: str) -> None:
        """Drop one labelled series of ``gauge`` (a finished job's progress).

        In multiprocess mode the series cannot leave the sample files: it is set to NaN,
        which :meth:`render` leaves out.
        """
        if self.multiprocess_dir:
            gauge.labels(*labelvalues).set(math.nan)
            return
        gauge.remove(*labelvalues)

    def render(self) -> bytes:
        if self.multiprocess_dir:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_MergedView(self.multiprocess_dir))
            return generate_latest(registry)
        return generate_latest(self.registry)
