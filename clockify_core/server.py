"""How every start method serves HTTP: uvicorn with limits on what a client may send.

Neither of uvicorn's HTTP protocols bounds what a client may do: httptools (the default)
buffers request headers without any bound, and neither times out a client that is slow to
send its request: a connection that sends nothing, or a header a byte at a time, is held
forever (only an idle keep-alive connection between two requests is closed).
:class:`LimitedHttpToolsProtocol` (the default, uvicorn's fast C parser) and
:class:`LimitedH11Protocol` (pure Python, ``SERVER__HTTP=h11``) add the same limits, with
the same answers, per connection:

* ``max_header_bytes``: a request line plus headers larger than this is refused with 431,
  and reading stops at the limit, so memory stays bounded (h11: its
  ``max_incomplete_event_size``; httptools: the bytes fed to the parser while a head is
  incomplete are counted and never more than the limit is fed). A head that arrived whole
  in one read is measured too (the URL and the header fields the parser reports);
* ``max_headers``: more header fields than this is refused with 431;
* ``header_read_timeout``: the request line and headers must arrive within this many
  seconds of the connection opening (or of the first byte of a later request on a
  kept-alive connection); else 408 and the connection is closed. Unlike a per-read
  timeout, a client sending a byte now and then does not extend it;
* ``body_read_timeout``: a request body that stops arriving for this long closes the
  connection (the app sees a disconnect). Pauses the server caused do not count: flow
  control while the app has not read the body yet, or a client waiting for 100 Continue.

The deadlines and the refusal are shared (:class:`_ReadLimits`); each protocol only says
where a request stands. :func:`apply_limits` puts the limits of a
:class:`~clockify_core.config.ServerConfig` on a ``uvicorn.Config``; the service CLI
(``serve``) and the gunicorn worker (:class:`LimitedUvicornWorker`, set by
``clockify_core/gunicorn_conf.py``) both use it. Plain ``uvicorn app --http
clockify_core.server:LimitedHttpToolsProtocol`` (or ``:LimitedH11Protocol``) gets the defaults.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import sys
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal

import h11
import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState
from uvicorn.supervisors import ChangeReload, Multiprocess
from uvicorn_worker import UvicornWorker

from clockify_core.config import ServerConfig

PROTOCOL_PATHS = {
    "httptools": "clockify_core.server:LimitedHttpToolsProtocol",
    "h11": "clockify_core.server:LimitedH11Protocol",
}
# The limits travel on the uvicorn Config instance, which uvicorn pickles into its worker
# processes (--workers, --reload); a class attribute set at runtime would not.
_LIMITS_ATTR = "clockify_server_limits"


@dataclass(frozen=True, slots=True)
class ServerLimits:
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    header_read_timeout: float = 10.0
    body_read_timeout: float = 30.0

    @classmethod
    def from_config(cls, config: ServerConfig) -> ServerLimits:
        return cls(
            max_header_bytes=config.max_header_bytes,
            max_headers=config.max_headers,
            header_read_timeout=config.header_read_timeout,
            body_read_timeout=config.body_read_timeout,
        )


def protocol_path(choice: Literal["auto", "httptools", "h11"]) -> str:
    """The limited protocol for ``SERVER__HTTP``: ``auto`` is httptools when it is installed
    (``uvicorn[standard]`` installs it), else h11, as uvicorn's own ``--http auto``."""
    if choice == "auto":
        choice = "httptools" if importlib.util.find_spec("httptools") is not None else "h11"
    return PROTOCOL_PATHS[choice]


def apply_limits(config: uvicorn.Config, server: ServerConfig) -> uvicorn.Config:
    """Serve ``config`` with the limited protocol ``server.http`` and the limits of ``server``."""
    config.http = protocol_path(server.http)
    config.h11_max_incomplete_event_size = server.max_header_bytes
    config.timeout_keep_alive = server.keepalive_seconds
    config.limit_concurrency = server.limit_concurrency
    config.timeout_graceful_shutdown = server.graceful_shutdown_seconds
    setattr(config, _LIMITS_ATTR, ServerLimits.from_config(server))
    return config


def limits_of(config: uvicorn.Config) -> ServerLimits:
    limits = getattr(config, _LIMITS_ATTR, None)
    if isinstance(limits, ServerLimits):
        return limits
    if config.h11_max_incomplete_event_size is not None:
        return ServerLimits(max_header_bytes=config.h11_max_incomplete_event_size)
    return ServerLimits()


class _LimitedConnection(h11.Connection):
    """An h11 server connection that refuses too many header fields and too large a head."""

    def __init__(self, limits: ServerLimits) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
        self.max_headers = limits.max_headers
        self.max_header_bytes = limits.max_header_bytes
        self.refusal: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as exc:
            self.refusal = exc
            raise
        if isinstance(event, h11.Request):
            if len(event.headers) > self.max_headers:
                self._refuse(f"more than {self.max_headers} header fields")
            # h11 bounds only a head still arriving: one that came complete in a single read
            # (up to the transport's read size) is parsed whatever its size.
            size = len(event.method) + len(event.target) + sum(len(n) + len(v) + 4 for n, v in event.headers)
            if size > self.max_header_bytes:
                self._refuse(f"request line and headers exceed {self.max_header_bytes} bytes")
        return event

    def _refuse(self, reason: str) -> None:
        self.refusal = h11.RemoteProtocolError(reason, error_status_hint=431)
        raise self.refusal


class _ReadLimits:
    """What both limited protocols share: the limits, the two read deadlines and the refusal.

    A protocol calls :meth:`_init_limits` from ``__init__``, arms the head deadline in
    ``connection_made``, calls :meth:`_track` after every read with where the request
    stands, and answers the four hooks below.
    """

    # uvicorn's protocols set these.
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    logger: logging.Logger

    limits: ServerLimits
    _read_timer: asyncio.TimerHandle | None
    _phase: Literal["head", "body"] | None
    _body_read_at: float

    def _init_limits(self, config: uvicorn.Config) -> None:
        self.limits = limits_of(config)
        self._read_timer = None
        self._phase = None
        self._body_read_at = 0.0

    # Hooks: where the request stands, in each protocol's terms.
    def _can_answer(self) -> bool:
        """No response of ours has started (or one finished): a refusal may be written."""
        raise NotImplementedError

    def _previous_response_pending(self) -> bool:
        """A pipelined head is arriving while the previous request is still being answered."""
        raise NotImplementedError

    def _reading_body(self) -> bool:
        raise NotImplementedError

    def _body_held_by_server(self) -> bool:
        """We stopped reading the body (the app has not read it yet) or the client waits for
        our 100 Continue: not the client's delay."""
        raise NotImplementedError

    def _track(self, in_head: bool, in_body: bool) -> None:
        """After a read: a head still incomplete keeps the deadline it got with its first byte;
        a body read restarts its idle deadline; otherwise nothing is timed by us."""
        if in_head:
            if self._phase != "head":
                self._arm("head")
        elif in_body:
            if self._phase != "body":
                self._arm("body")
            else:
                self._body_read_at = self.loop.time()  # cheaper than a new timer per chunk
        elif self._phase is not None:
            self._disarm()

    def _arm(self, phase: Literal["head", "body"]) -> None:
        self._disarm()
        self._phase = phase
        if phase == "head":
            self._read_timer = self.loop.call_later(self.limits.header_read_timeout, self._header_timeout)
        else:
            self._body_read_at = self.loop.time()
            self._read_timer = self.loop.call_later(self.limits.body_read_timeout, self._body_timeout)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
        self._read_timer = None
        self._phase = None

    def _header_timeout(self) -> None:
        self._read_timer, self._phase = None, None
        if self.transport.is_closing():
            return
        if self._previous_response_pending():
            self._arm("head")  # the server is still busy with the request before it
            return
        self._send_and_close(408, "request line and headers not received in time")

    def _body_timeout(self) -> None:
        self._read_timer, self._phase = None, None
        if self.transport.is_closing() or not self._reading_body():
            return
        remaining = self._body_read_at + self.limits.body_read_timeout - self.loop.time()
        if remaining > 0:  # a chunk arrived since the timer was set
            self._phase = "body"
            self._read_timer = self.loop.call_later(remaining, self._body_timeout)
        elif self._body_held_by_server():
            self._arm("body")
        else:
            self.logger.info("Request body not received in time; closing the connection.")
            self.transport.close()

    def _send_and_close(self, status: int, reason: str) -> None:
        """Answer ``status`` with ``reason`` and close; only close when a response has started."""
        self._disarm()
        if self._can_answer():
            body = reason.encode("ascii", "replace")
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n%s" % (status, HTTPStatus(status).phrase.encode(), len(body), body)
            )
        self.transport.close()


class LimitedH11Protocol(_ReadLimits, H11Protocol):
    """uvicorn's h11 protocol with header limits and read timeouts (see the module doc)."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._init_limits(config)
        self.conn = _LimitedConnection(self.limits)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("head")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        state = self.conn.their_state
        self._track(in_head=state is h11.IDLE, in_body=state is h11.SEND_BODY)

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers every refusal of h11 with 400 "Invalid HTTP request received.";
        # answer h11's hint (431 for a head too large or too many fields) with the reason.
        refusal = self.conn.refusal if isinstance(self.conn, _LimitedConnection) else None
        status, reason = 400, msg
        if refusal is not None and refusal.error_status_hint == 431:
            status, reason = 431, str(refusal)
            if "too long" in reason.lower():  # h11's wording for max_incomplete_event_size
                reason = f"request line and headers exceed {self.limits.max_header_bytes} bytes"
        self._send_and_close(status, reason)

    def _can_answer(self) -> bool:
        return self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE)

    def _previous_response_pending(self) -> bool:
        return False  # h11 parses the next request only once the previous one was answered

    def _reading_body(self) -> bool:
        return self.conn.their_state is h11.SEND_BODY

    def _body_held_by_server(self) -> bool:
        return self.flow.read_paused or self.conn.they_are_waiting_for_100_continue


class _HeadRefused(Exception):
    """Raised in a parser callback to stop httptools; uvicorn then calls send_400_response."""


_IDLE, _HEAD, _BODY = 0, 1, 2  # where LimitedHttpToolsProtocol's current request stands


class LimitedHttpToolsProtocol(_ReadLimits, HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of :class:`LimitedH11Protocol`.

    llhttp itself keeps nothing, but httptools joins the pieces of a header field until it
    is complete and uvicorn joins the URL and collects the fields, so the head is bounded
    here, in bytes as they arrive: a head that begins at the start of a read (a new
    connection, a kept-alive one between requests, or the rest of a head still arriving) is
    never fed to the parser past ``max_header_bytes``. One that begins inside a read, right
    behind the previous request (pipelining), gets what is left of that read once the
    previous request's bytes are taken off (its body as the parser reports it, its head as
    measured below), and if it ends in that read it is measured as h11 measures a whole head
    (method, target, and each field plus 4 bytes). The fields are counted once the head is
    complete (the byte limit bounds them before that), so the parser callbacks called for
    every field stay uvicorn's own: this protocol runs a handful of cheap calls per request.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._init_limits(config)
        self._state = _IDLE
        self._head_bytes = 0  # of the head still arriving, as of the end of the last read
        self._head_before = 0  # of the current head, received in reads before this one
        self._used = 0  # bytes of this read that came before the current head
        self._inside_read = False  # a head beginning now begins inside the read, not at its start
        self._head_inside = False  # the current head began inside a read
        self._unmeasured: tuple[int, int] | None = None  # a head that ended in this read: its method length, _head_before
        self._refusal: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("head")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        limit = self.limits.max_header_bytes
        fed = data
        if self._state != _BODY and len(data) > limit - self._head_bytes:
            fed = data[: limit - self._head_bytes]  # never more of a head than the limit
        self._head_before, self._used, self._unmeasured = self._head_bytes, 0, None
        self._inside_read = self._state != _IDLE
        HttpToolsProtocol.data_received(self, fed)
        if self.transport.is_closing():
            return  # refused
        if self._state == _HEAD:  # a head is still arriving: the rest of this read is its
            self._head_bytes = max(0, self._head_before + len(fed) - self._used)
            if self._head_bytes > limit or (self._head_bytes == limit and len(fed) < len(data)):
                self._send_and_close(431, f"request line and headers exceed {limit} bytes")
                return
        if len(fed) < len(data):
            if self.transport.get_protocol() is self:
                self.data_received(data[len(fed) :])
            else:
                self._disarm()  # upgraded to a WebSocket, whose protocol has the rest
            return
        self._track(in_head=self._state == _HEAD, in_body=self._state == _BODY)

    def send_400_response(self, msg: str) -> None:
        refusal, self._refusal = self._refusal, None
        if refusal is None:
            self._disarm()
            super().send_400_response(msg)
        else:
            self._send_and_close(431, refusal)

    # Parser callbacks (on_url and on_header stay uvicorn's). The base is named, not super():
    # these run for every request, and a super object costs a little each time.
    def on_message_begin(self) -> None:
        if self._inside_read and self._unmeasured is not None:
            # The previous head ended in this read: take its bytes in this read off.
            method, before = self._unmeasured
            self._used += max(0, self._head_size(method) + 14 - before)  # + " ", " HTTP/1.1\r\n", "\r\n"
        self._unmeasured = None
        self._head_inside, self._inside_read = self._inside_read, True
        self._state, self._head_before = _HEAD, 0
        HttpToolsProtocol.on_message_begin(self)

    def on_headers_complete(self) -> None:
        limits = self.limits
        if len(self.headers) > limits.max_headers:
            self._refuse(f"more than {limits.max_headers} header fields")
        method = len(self.parser.get_method())
        if self._head_inside:  # not bounded as it arrived: measure it whole
            size = self._head_size(method)
            if size > limits.max_header_bytes:
                self._refuse(f"request line and headers exceed {limits.max_header_bytes} bytes")
            self._used += max(0, size + 14 - self._head_before)
        else:
            self._unmeasured = (method, self._head_before)  # measured only if another head follows
        self._state, self._head_bytes = _BODY, 0
        HttpToolsProtocol.on_headers_complete(self)

    def on_body(self, body: bytes) -> None:
        self._used += len(body)
        HttpToolsProtocol.on_body(self, body)

    def on_message_complete(self) -> None:
        self._state = _IDLE
        HttpToolsProtocol.on_message_complete(self)

    def _head_size(self, method: int) -> int:
        """h11's measure of a whole head: method, target and each field plus 4 bytes."""
        return method + len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _refuse(self, reason: str) -> None:
        self._refusal = reason
        raise _HeadRefused(reason)

    # Hooks of _ReadLimits
    def _can_answer(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _previous_response_pending(self) -> bool:
        return not self._can_answer()

    def _reading_body(self) -> bool:
        return self._state == _BODY

    def _body_held_by_server(self) -> bool:
        return self.flow.read_paused or (self.cycle is not None and self.cycle.waiting_for_100_continue)


class LimitedUvicornWorker(UvicornWorker):  # type: ignore[misc]  # uvicorn_worker ships no types
    """gunicorn's uvicorn worker with the service's ``SERVER__*`` limits.

    The limits come from the settings of the app gunicorn loaded (``app.state.settings``);
    gunicorn's own ``keepalive`` is replaced by ``SERVER__KEEPALIVE_SECONDS``.
    """

    CONFIG_KWARGS: dict[str, Any] = {"loop": "auto", "http": protocol_path("auto")}

    async def _serve(self) -> None:
        state = getattr(self.wsgi, "state", None)
        settings = getattr(state, "settings", None)
        apply_limits(self.config, getattr(settings, "server", None) or ServerConfig())
        await super()._serve()


def serve(
    app_path: str,
    *,
    host: str,
    port: int,
    server: ServerConfig,
    workers: int = 1,
    reload: bool = False,
) -> None:
    """``uvicorn.run`` with the limits of ``server`` (``uvicorn.run`` builds its own Config)."""
    config = apply_limits(
        uvicorn.Config(app_path, host=host, port=port, workers=workers, reload=reload, log_config=None),
        server,
    )
    runner = uvicorn.Server(config)
    try:
        if config.should_reload:
            ChangeReload(config, target=runner.run, sockets=[config.bind_socket()]).run()
        elif config.workers > 1:
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            runner.run()
    except KeyboardInterrupt:
        pass
    if not runner.started and not config.should_reload and config.workers == 1:
        sys.exit(STARTUP_FAILURE)
