"""Prometheus metrics in a registry per app, so every app (and every test) starts at zero.

Capabilities receive the app's :class:`Metrics` as an argument and record on its
attributes; nothing registers into the global default registry.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, service: str = "service") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        started = time.monotonic()
        self.uptime = Gauge("addon_uptime_seconds", "Seconds since the app started", registry=r)
        self.uptime.set_function(lambda: time.monotonic() - started)
        self.info = Gauge("addon_info", "Static service information", ["service"], registry=r)
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
        self.inbox_depth = Gauge("inbox_depth", "Inbox rows by status", ["status"], registry=r)
        self.inbox_processing = Histogram(
            "inbox_processing_seconds", "Time from receipt to applied", buckets=LATENCY_BUCKETS + (30.0, 120.0),
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

        # Pull side.
        self.bootstrap_jobs = Counter("bootstrap_jobs_total", "Bootstrap jobs by final status", ["status"], registry=r)
        self.jobs = Counter("jobs_total", "Jobs by kind and final status", ["kind", "status"], registry=r)
        self.job_rows = Gauge("job_rows", "Rows written by the running job", ["workspace_id", "kind"], registry=r)
        self.job_pages = Gauge("job_pages", "Pages fetched by the running job", ["workspace_id", "kind"], registry=r)
        self.job_eta = Gauge("job_eta_seconds", "Estimated seconds left", ["workspace_id", "kind"], registry=r)
        self.rows_upserted = Counter("mirror_rows_written_total", "Mirror rows written", ["table", "source"], registry=r)
        self.sync_scheduled = Counter("sync_scheduled_total", "Sync jobs queued by the scheduler", registry=r)
        self.scheduler_leader = Gauge("sync_scheduler_leader", "1 while this instance leads the scheduler", registry=r)

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

    def render(self) -> bytes:
        return generate_latest(self.registry)
