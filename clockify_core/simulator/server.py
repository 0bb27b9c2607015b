"""Serving the simulator with uvicorn: in the foreground (CLI) or on a background thread (fixtures).

Both use :class:`DroppingH11Protocol`, so injected dropped connections really close the
socket without a response.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from clockify_core.simulator.app import create_simulator_app
from clockify_core.simulator.config import SimulatorConfig
from clockify_core.simulator.faults import DroppingH11Protocol


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(256)
    sock.set_inheritable(True)
    return sock


def uvicorn_config(config: SimulatorConfig, *, log_level: str = "warning", access_log: bool = False) -> uvicorn.Config:
    return uvicorn.Config(create_simulator_app(config), host=config.host, port=config.port, http=DroppingH11Protocol,
                          log_level=log_level, access_log=access_log, lifespan="on", timeout_graceful_shutdown=2)


def serve(config: SimulatorConfig, *, log_level: str = "info") -> None:
    """Run until interrupted."""
    sock = bind(config.host, config.port)
    if config.port == 0:
        config = config.model_copy(update={"port": sock.getsockname()[1]})
    uvicorn.Server(uvicorn_config(config, log_level=log_level, access_log=log_level == "debug")).run(sockets=[sock])


class BackgroundServer:
    """The simulator on a loopback port in a daemon thread; ``base_url`` is known before start."""

    def __init__(self, config: SimulatorConfig) -> None:
        self._sock = bind(config.host, config.port)
        port = self._sock.getsockname()[1]
        self.config = config.model_copy(update={"port": port, "public_url": config.public_url})
        self.server = uvicorn.Server(uvicorn_config(self.config))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]},
                                        name="clockify-simulator", daemon=True)

    @property
    def base_url(self) -> str:
        return self.config.base_url

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the simulator did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
