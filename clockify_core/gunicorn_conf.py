"""Gunicorn settings shared by the services: ``gunicorn -c python:clockify_core.gunicorn_conf api_studio.main:app``.

``WEB_CONCURRENCY`` sets the worker count, ``PORT``/``BIND`` the address. Each worker
migrates at startup under a lock, so the first does the work and the others find the head.
"""

from __future__ import annotations

import os

bind = os.environ.get("BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "uvicorn_worker.UvicornWorker"
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "20"))
timeout = int(os.environ.get("WORKER_TIMEOUT", "60"))
keepalive = 5
accesslog = None
