"""Faults on demand: 5xx answers, added latency and dropped connections, reproducible from a seed.

Decisions come from one seeded RNG in request order, so the same seed and the same request
sequence fail the same requests. A dropped connection closes the socket without a
response: under uvicorn this needs :class:`DroppingH11Protocol` (the simulator's server
uses it); in-process, :class:`DroppedConnection` is raised and :class:`SimulatorTransport`
turns it into the ``httpx.RemoteProtocolError`` a real client would see.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from clockify_core.errors import PROBLEM_CONTENT_TYPE, problem_body
from clockify_core.simulator.config import FaultSettings

log = structlog.get_logger(__name__)

DROP_EXTENSION = "clockify.simulator.drop"
FAULTY_PREFIXES = ("/api/", "/reports/", "/pto/")


class DroppedConnection(Exception):
    """Raised in-process where no socket exists to close."""


@dataclass(frozen=True, slots=True)
class Decision:
    action: Literal["pass", "error", "drop"]
    status: int = 0
    delay: float = 0.0


class FaultInjector:
    def __init__(self, settings: FaultSettings) -> None:
        self.configure(settings)

    def configure(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._rng = random.Random(f"faults:{settings.seed}")
        self.counts = {"pass": 0, "error": 0, "drop": 0}

    @property
    def active(self) -> bool:
        s = self.settings
        return bool(s.error_rate or s.drop_rate or s.latency_ms or s.latency_jitter_ms)

    def decide(self) -> Decision:
        s = self.settings
        rng = self._rng
        # Draw every number for every request so one setting does not shift another's sequence.
        roll_drop, roll_error, roll_status, roll_jitter = rng.random(), rng.random(), rng.random(), rng.random()
        delay = (s.latency_ms + s.latency_jitter_ms * roll_jitter) / 1000
        if roll_drop < s.drop_rate:
            decision = Decision("drop", delay=delay)
        elif roll_error < s.error_rate and s.error_statuses:
            decision = Decision("error", s.error_statuses[int(roll_status * len(s.error_statuses))], delay)
        else:
            decision = Decision("pass", delay=delay)
        self.counts[decision.action] += 1
        return decision


class FaultMiddleware:
    """Applies :class:`FaultInjector` to the API surfaces, never to ``/__sim``."""

    def __init__(self, app: ASGIApp, injector: Callable[[], FaultInjector]) -> None:
        self.app = app
        self.injector = injector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        injector = self.injector()
        if scope["type"] != "http" or not injector.active or not scope["path"].startswith(FAULTY_PREFIXES):
            await self.app(scope, receive, send)
            return
        decision = injector.decide()
        if decision.delay:
            await asyncio.sleep(decision.delay)
        if decision.action == "drop":
            drop = scope.get("extensions", {}).get(DROP_EXTENSION)
            if drop is None:
                raise DroppedConnection(scope["path"])
            drop()
            return
        if decision.action == "error":
            body = orjson.dumps(problem_body(status=decision.status, title="Injected fault",
                                             detail="The simulator failed this request on purpose",
                                             message="Injected fault", code=decision.status))
            await send({"type": "http.response.start", "status": decision.status,
                        "headers": [(b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


class DroppingH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a scope extension that aborts the connection, sending nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        inner = self.app

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            scope.setdefault("extensions", {})[DROP_EXTENSION] = self._drop
            await inner(scope, receive, send)

        self.app = app

    def _drop(self) -> None:
        # Marking the cycle disconnected first stops uvicorn from writing its own 500.
        cycle = getattr(self, "cycle", None)
        if cycle is not None:
            cycle.disconnected = True
        self.transport.abort()


def _answering_crashes(app: ASGIApp) -> ASGIApp:
    """What a server does with an exception that escapes the app: log it, answer 500 if
    nothing was sent yet. A dropped connection still goes up, to become the client's error."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await app(scope, receive, tracking)
        except DroppedConnection:
            raise
        except Exception:
            if not started:  # else the app's error handler has answered and logged it
                log.exception("simulator.crashed", path=scope.get("path"))
                body = orjson.dumps(problem_body(status=500, title="Internal Server Error",
                                                 detail="The simulator failed to answer", message="Internal error",
                                                 code=500))
                await send({"type": "http.response.start", "status": 500,
                            "headers": [(b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})

    return wrapped


class SimulatorTransport(httpx.ASGITransport):
    """ASGITransport that behaves like the simulator behind a socket: a crash is a 500
    response (as uvicorn answers it), a dropped connection ``httpx.RemoteProtocolError``."""

    def __init__(self, app: ASGIApp, **kwargs: Any) -> None:
        super().__init__(app=_answering_crashes(app), **kwargs)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except DroppedConnection as exc:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request) from exc
