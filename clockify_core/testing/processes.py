"""Run a service as a real subprocess (uvicorn, gunicorn or its own ``serve``) for boot, scale-out and chaos tests."""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import httpx

from clockify_core.config import ServiceSettings
from clockify_core.testing.databases import TEST_MAX_OVERFLOW, TEST_POOL_SIZE


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def small_pool_env(app_path: str) -> dict[str, str]:
    """The test pool (clockify_core/testing/databases.py) for the service at ``app_path``
    (``pkg.main:app``, settings in ``pkg.settings.Settings``) as environment variables."""
    try:
        module = importlib.import_module(app_path.partition(".")[0] + ".settings")
    except ImportError:
        return {}
    settings_cls = getattr(module, "Settings", None)
    if not (isinstance(settings_cls, type) and issubclass(settings_cls, ServiceSettings)):
        return {}
    prefix = settings_cls.env_prefixes[0]
    return {f"{prefix}DATABASE__POOL_SIZE": str(TEST_POOL_SIZE), f"{prefix}DATABASE__MAX_OVERFLOW": str(TEST_MAX_OVERFLOW)}


class ServiceProcess:
    def __init__(
        self,
        app_path: str,
        *,
        env: Mapping[str, str],
        port: int | None = None,
        server: str = "uvicorn",
        workers: int = 1,
        log_path: Path | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.app_path = app_path
        self.port = port or free_port()
        self.server = server
        self.workers = workers
        self.env = {**os.environ, **small_pool_env(app_path), **env}
        self.log_path = log_path
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> Sequence[str]:
        if self.server == "gunicorn":
            return [
                sys.executable, "-m", "gunicorn", self.app_path, "-c", "python:clockify_core.gunicorn_conf",
                "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
            ]
        if self.server == "cli":  # the service's own `serve`, as scripts/run-platform starts it
            return [
                sys.executable, "-m", self.app_path.partition(".")[0], "serve", "--host", "127.0.0.1",
                "--port", str(self.port), "--workers", str(self.workers),
            ]
        return [
            sys.executable, "-m", "uvicorn", self.app_path, "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", str(self.workers), "--log-level", "warning",
        ]

    def start(self) -> ServiceProcess:
        if self.log_path:
            with self.log_path.open("ab") as log:  # the child keeps its own descriptor
                self.proc = self._spawn(log)
        else:
            self.proc = self._spawn(subprocess.DEVNULL)
        return self

    def _spawn(self, log: int | IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 - fixed interpreter and arguments
            self.command(), env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd,
            start_new_session=True,
        )

    def wait_ready(self, path: str = "/ready", timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.app_path} exited with {self.proc.returncode}: {self.tail_log()}")
            try:
                r = httpx.get(self.url + path, timeout=2)
                if r.status_code == 200:
                    return
                last = f"{r.status_code} {r.text[:200]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.2)
        raise TimeoutError(f"{self.app_path} not ready after {timeout}s: {last}; {self.tail_log()}")

    def tail_log(self, lines: int = 30) -> str:
        if self.log_path and self.log_path.is_file():
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 15.0) -> bool:
        """SIGTERM to the process group; True when it shut down by itself in time.

        (uvicorn re-raises the signal after a graceful shutdown, so -SIGTERM counts as clean.)
        """
        if self.proc is None or self.proc.poll() is not None:
            return self.proc is not None and self.proc.returncode in (0, -signal.SIGTERM)
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout) in (0, -signal.SIGTERM)
        except subprocess.TimeoutExpired:
            self.kill()
            return False

    def kill(self) -> int | None:
        """kill -9 the whole process group: no shutdown code runs."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.wait(timeout=15)
