"""The HTTP limits of every start method (clockify_core/server.py), against a real server process:
the service CLI's ``serve`` (what scripts/run-platform runs) and gunicorn with the shared config
(what the images run), with either HTTP parser (``SERVER__HTTP``): httptools, the default, under
both; h11 under ``serve`` only, as gunicorn's worker applies the same settings the same way
(``apply_limits``, checked for the parser choice below)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clockify_core.testing.processes import ServiceProcess

LIMITS = {
    "UW_SERVER__MAX_HEADER_BYTES": "16384",
    "UW_SERVER__MAX_HEADERS": "40",
    "UW_SERVER__HEADER_READ_TIMEOUT": "1",
    "UW_SERVER__BODY_READ_TIMEOUT": "1",
}


@pytest.fixture(
    scope="module",
    params=[("cli", "httptools"), ("gunicorn", "httptools"), ("cli", "h11")],
    ids=["cli-httptools", "gunicorn-httptools", "cli-h11"],
)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    server, http = request.param
    tmp: Path = tmp_path_factory.mktemp(f"served-{server}-{http}")
    env = {
        **LIMITS,
        "UW_SERVER__HTTP": http,
        "UW_DATA_DIR": str(tmp / "data"),
        "UW_BASE_URL": "https://addon.example.com",
        "UW_WORKER__ENABLED": "false",
        "DATABASE_URL": "",
    }
    proc = ServiceProcess(
        "universal_webhook.main:app", env=env, server=server, log_path=tmp / "log", cwd=tmp
    ).start()
    try:
        proc.wait_ready()
        yield proc
    finally:
        assert proc.stop(), proc.tail_log()


def _connect(proc: ServiceProcess) -> socket.socket:
    # The socket timeout only ends a hung test; no assertion depends on it.
    return socket.create_connection(("127.0.0.1", proc.port), timeout=30)


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset ends it too)."""
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _response(sock: socket.socket) -> bytes:
    """One whole response on a kept-alive connection (it may arrive in several reads)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")).split(b":")[1])
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _send_all(sock: socket.socket, data: bytes) -> bool:
    """False when the server closed the connection before taking all of ``data``."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


def test_headers_under_the_limits_are_served(served: ServiceProcess) -> None:
    headers = {"X-Addon-Token": "t" * 8000, **{f"X-Extra-{n}": "v" for n in range(30)}}
    assert httpx.get(served.url + "/healthz", headers=headers).json() == {"status": "ok"}


def test_oversized_headers_are_refused_with_431(served: ServiceProcess) -> None:
    with _connect(served) as sock:
        _send_all(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 17_000 + b"\r\n\r\n")
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"request line and headers exceed 16384 bytes" in answer


def test_20_mb_of_headers_are_not_read(served: ServiceProcess) -> None:
    """The issue's 20 MB of headers: the server stops reading at the limit and closes, so the
    client cannot even send them all (before, the server buffered every byte)."""
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-Pad-%d: %s\r\n" % (n, b"a" * 1000) for n in range(20_000)
    )
    with _connect(served) as sock:
        completed = _send_all(sock, head + b"\r\n")
        answer = _answer(sock)
    assert not completed, "the server read 20 MB of headers"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert httpx.get(served.url + "/healthz").status_code == 200


def test_a_head_arriving_in_pieces_is_refused_at_the_limit(served: ServiceProcess) -> None:
    """Each piece is under the limit; together they are not (httptools: counted across reads)."""
    with _connect(served) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad-1: " + b"a" * 9000 + b"\r\n")
        _send_all(sock, b"X-Pad-2: " + b"b" * 9000 + b"\r\n\r\n")
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"request line and headers exceed 16384 bytes" in answer


def test_an_oversized_head_after_a_body_on_the_same_connection_is_not_served(served: ServiceProcess) -> None:
    """The end of one request's body and an oversized next head in one send (httptools: a head
    beginning inside a read is measured by what the parser reports)."""
    with _connect(served) as sock:
        sock.sendall(
            b"POST /webhooks/custom/abc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10\r\n\r\n" + b'{"a": '
        )
        _send_all(sock, b'"b"}' + b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 17_000 + b"\r\n\r\n")
        answer = _answer(sock)
    assert b'"status":"ok"' not in answer, answer[-300:]
    assert httpx.get(served.url + "/healthz").status_code == 200


def test_too_many_header_fields_are_refused_with_431(served: ServiceProcess) -> None:
    with _connect(served) as sock:
        fields = b"".join(b"X-F%d: 1\r\n" % n for n in range(41))
        _send_all(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"more than 40 header fields" in answer


def test_a_slow_loris_is_disconnected_after_the_header_read_timeout(served: ServiceProcess) -> None:
    """A client dribbling its headers a byte at a time keeps resetting a per-read timeout; the
    head's deadline still ends it, long before the last byte would have been sent."""
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 200 + b"\r\n\r\n"
    with _connect(served) as sock:
        sock.settimeout(0.1)
        sent, answer = 0, b""
        while sent < len(head):
            try:
                sock.sendall(head[sent : sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
            try:
                answer = sock.recv(65536)
                break  # the server answered (or closed) before the head was complete
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
    assert sent < len(head), "the server waited for the whole slowly sent head"
    assert answer.startswith(b"HTTP/1.1 408 ") or answer == b"", answer[:200]


def test_a_connection_that_sends_nothing_is_closed(served: ServiceProcess) -> None:
    with _connect(served) as sock:
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]


def test_a_body_that_stops_arriving_closes_the_connection(served: ServiceProcess) -> None:
    """The lifecycle route reads its JSON body before anything else, so it answers nothing
    until the body is complete (a route that answers first, like an unknown webhook's 404,
    would leave the connection to the keep-alive timeout instead)."""
    with _connect(served) as sock:
        sock.sendall(
            b"POST /lifecycle/installed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n" + b'{"a": "' + b"x" * 100
        )
        answer = _answer(sock)  # returns only once the server closed the connection
    assert answer == b"", answer[:200]


def test_a_kept_alive_connection_gets_a_new_deadline_for_each_request(served: ServiceProcess) -> None:
    """A second request on the same connection is served; dribbled after a pause, it is not."""
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with _connect(served) as sock:
        for _ in range(2):
            sock.sendall(request)
            assert _response(sock).startswith(b"HTTP/1.1 200 ")
        sock.sendall(request[:10])  # an incomplete third head is never finished
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 408 ") or answer == b"", answer[:200]

def test_httptools_is_the_default_parser_and_h11_selectable() -> None:
    import uvicorn

    from clockify_core.config import ServerConfig
    from clockify_core.server import (
        LimitedH11Protocol,
        LimitedHttpToolsProtocol,
        LimitedUvicornWorker,
        apply_limits,
    )

    def served_with(http: str) -> object:
        config = apply_limits(uvicorn.Config("universal_webhook.main:app"), ServerConfig.model_validate({"http": http}))
        config.load()
        return config.http_protocol_class

    assert served_with("auto") is LimitedHttpToolsProtocol  # httptools comes with uvicorn[standard]
    assert served_with("httptools") is LimitedHttpToolsProtocol
    assert served_with("h11") is LimitedH11Protocol
    assert LimitedUvicornWorker.CONFIG_KWARGS["http"] == "clockify_core.server:LimitedHttpToolsProtocol"


def test_every_start_method_serves_with_the_limits() -> None:
    """scripts/run-platform runs the CLI's serve (tested above); the images and compose run
    gunicorn with the shared config, whose worker is the limited one (tested above)."""
    from clockify_core import gunicorn_conf
    from clockify_core.server import LimitedUvicornWorker

    root = Path(__file__).resolve().parents[2]
    run_platform = (root / "scripts" / "run-platform").read_text()
    assert 'python -m "$app" serve' in run_platform
    assert "uvicorn" not in run_platform.replace("# The service CLI's serve: uvicorn", "")
    cmds = [line for line in (root / "Dockerfile").read_text().splitlines() if line.startswith("CMD [\"gunicorn\"")]
    assert len(cmds) == 3
    assert all('"python:clockify_core.gunicorn_conf"' in cmd for cmd in cmds)
    assert gunicorn_conf.worker_class == f"{LimitedUvicornWorker.__module__}.{LimitedUvicornWorker.__name__}"
