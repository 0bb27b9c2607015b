"""A real HTTP server on 127.0.0.1 that records every request: the far end of flows' HTTP actions.

Paths with a behaviour: ``/redirect?to=URL[&status=302]`` answers a redirect, ``/big``
300 kB of text, ``/fail`` a 503, ``/echo`` the request's headers and body as JSON. Any other
path answers ``{"ok": true}``, or, with ``echo_all``, echoes like ``/echo`` (so a secret
sent out comes back in the answer, where a test can check it is masked).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes


@dataclass
class LoopbackServer:
    port: int = 0
    echo_all: bool = False
    requests: list[Recorded] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    @contextmanager
    def serve(cls, *, echo_all: bool = False) -> Iterator[LoopbackServer]:
        server = cls(echo_all=echo_all)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
        server.port = httpd.server_address[1]
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield server
        finally:
            httpd.shutdown()
            httpd.server_close()
            thread.join(5)


def _handler(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            headers = {k.lower(): v for k, v in self.headers.items()}
            server.requests.append(Recorded(self.command, parts.path, query, headers, body))
            if parts.path == "/redirect":
                self._reply(int(query.get("status", ["302"])[0]), b"", {"Location": query["to"][0]})
            elif parts.path == "/big":
                self._reply(200, b"x" * 300_000, {"Content-Type": "text/plain"})
            elif parts.path == "/fail":
                self._reply(503, b'{"error":"down"}', {"Content-Type": "application/json"})
            elif parts.path == "/echo" or server.echo_all:
                echoed = {"headers": headers, "body": body.decode("utf-8", "replace")}
                self._reply(200, json.dumps(echoed).encode(), {"Content-Type": "application/json"})
            else:
                self._reply(200, b'{"ok":true}', {"Content-Type": "application/json"})

        def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
