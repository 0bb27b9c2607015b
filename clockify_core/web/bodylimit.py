"""A size limit on request bodies, refused with a 413 problem before the body is read.

The webhook receivers bound their bodies themselves (``WEBHOOKS__MAX_BODY_BYTES``, 5 MB by
default); every other route takes JSON documents of a few kilobytes, so without a limit a
single request could make the process parse and validate megabytes (and routes whose
models ignore unknown members would even accept them). A declared ``Content-Length`` over
the limit is answered at once; a body sent without one is counted as it arrives and cut off
with the same 413 when it passes the limit.
"""

from __future__ import annotations

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clockify_core.errors import PROBLEM_CONTENT_TYPE, PayloadTooLarge


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limit: int, exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(scope, send, f"body of {declared} bytes exceeds the {self.limit} byte limit")
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # An HTTPException passes FastAPI's body reading untouched; the app's handler
                    # renders it as the 413 problem.
                    raise HTTPException(413, f"body exceeds the {self.limit} byte limit")
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, scope: Scope, send: Send, detail: str) -> None:
        state = scope.get("state") or {}
        request_id = state.get("request_id")
        body = orjson.dumps(PayloadTooLarge(detail).to_problem(
            instance=scope["path"], request_id=request_id if isinstance(request_id, str) else None))
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", PROBLEM_CONTENT_TYPE.encode()), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
