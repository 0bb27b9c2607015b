"""A round-robin HTTP load balancer on a loopback port, for scale-out tests.

Each *request*, not each connection, goes to the next backend, so a keep-alive client
(the simulator's webhook sender) still spreads over every instance. A backend that
refuses the connection is skipped, as a load balancer's health check would; when none
answers the client gets 502. Like a real proxy it adds ``X-Forwarded-For``/``-Proto``/``-Host``.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections import Counter
from collections.abc import Sequence
from types import TracebackType

import httpx
import uvicorn
from starlette.types import Message, Receive, Scope, Send

# Headers that describe one connection, not the message (RFC 9110 section 7.6.1).
_HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade",
    b"host", b"content-length",
})


class RoundRobinBalancer:
    def __init__(self, backends: Sequence[str], *, host: str = "127.0.0.1") -> None:
        if not backends:
            raise ValueError("a balancer needs at least one backend")
        self.backends = [b.rstrip("/") for b in backends]
        self.served: Counter[str] = Counter()  # responses per backend
        self._turn = itertools.cycle(range(len(self.backends)))
        self._lock = threading.Lock()
        self._client: httpx.AsyncClient | None = None
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self._sock.listen(256)
        self.url = f"http://{host}:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(self._app, interface="asgi3", log_level="warning", access_log=False, lifespan="on",
                                timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="round-robin-balancer", daemon=True)

    def start(self, timeout: float = 10.0) -> RoundRobinBalancer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the balancer did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()

    def __enter__(self) -> RoundRobinBalancer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _next_backends(self) -> list[str]:
        with self._lock:
            first = next(self._turn)
        return self.backends[first:] + self.backends[:first]

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._proxy(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._client = httpx.AsyncClient(timeout=30, trust_env=False, follow_redirects=False)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._client is not None:
                    await self._client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self._client is not None
        body = bytearray()
        while True:
            message: Message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP_BY_HOP]
        client_host = (scope.get("client") or ("", 0))[0]
        host = dict(scope["headers"]).get(b"host", b"")
        headers += [(b"x-forwarded-for", client_host.encode()), (b"x-forwarded-proto", b"http"),
                    (b"x-forwarded-host", host)]
        target = scope["raw_path"].decode() + ("?" + scope["query_string"].decode() if scope["query_string"] else "")
        for backend in self._next_backends():
            request = self._client.build_request(scope["method"], backend + target, headers=headers, content=bytes(body))
            try:
                response = await self._client.send(request, stream=True)
            except httpx.ConnectError:
                continue  # down: the next backend takes the request
            try:
                payload = b"".join([chunk async for chunk in response.aiter_raw()])  # still encoded, as sent
            finally:
                await response.aclose()
            self.served[backend] += 1
            out = [(k.lower(), v) for k, v in response.headers.raw if k.lower() not in _HOP_BY_HOP]
            out.append((b"content-length", str(len(payload)).encode()))
            await send({"type": "http.response.start", "status": response.status_code, "headers": out})
            await send({"type": "http.response.body", "body": payload})
            return
        await send({"type": "http.response.start", "status": 502, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
