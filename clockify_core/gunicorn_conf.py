"""Gunicorn settings shared by the services: ``gunicorn -c python:clockify_core.gunicorn_conf api_studio.main:app``.

``WEB_CONCURRENCY`` sets the worker count, ``PORT``/``BIND`` the address. Each worker
migrates at startup under a lock, so the first does the work and the others find the head.

With ``PROMETHEUS_MULTIPROC_DIR`` set (the images set it), every worker writes its
metrics there and ``/metrics`` sums them (clockify_core/observability/metrics.py): the
master empties the directory before the first worker starts, so a restarted server does
not add the previous run's counters, and forgets the live gauges of every worker that exits.
"""

from __future__ import annotations

import os
from typing import Any

from clockify_core.observability.metrics import (
    MULTIPROC_ENV,
    mark_worker_dead,
    reset_multiprocess_dir,
)

bind = os.environ.get("BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# uvicorn (httptools, or h11 with SERVER__HTTP=h11) with the service's SERVER__* limits
# (header size and count, read timeouts, keep-alive): clockify_core/server.py.
worker_class = "clockify_core.server.LimitedUvicornWorker"
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "20"))
timeout = int(os.environ.get("WORKER_TIMEOUT", "60"))
keepalive = 5  # each worker uses SERVER__KEEPALIVE_SECONDS instead
accesslog = None


def on_starting(server: Any) -> None:
    """In the master, before any worker exists."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        reset_multiprocess_dir(path)


def child_exit(server: Any, worker: Any) -> None:
    """In the master, after a worker exited (cleanly, crashed or killed)."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        mark_worker_dead(worker.pid, path)
