"""Reading pages from Clockify for a pull: retries on top of the client, JSON, concurrency.

Every call goes through the shared client, so the per-(add-on, workspace) limiter,
``Retry-After`` on 429 and backoff on 502/503/504 already apply. A pull adds one layer
per page: when the client gives up on a transient failure (a 500, a 429 storm that
outlasted its retries, a timeout), the page is tried again after a pause, up to
``sync.page_attempts`` times, and counted in the job's ``errors``. Other 4xx answers
are final and raised as :class:`ClockifyApiError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import httpx
import orjson
import structlog

from clockify_core.client import (
    ApiKind,
    ClockifyApiError,
    WorkspaceApi,
    ensure_success,
    is_last_page,
)
from clockify_core.config import HttpClientConfig, SyncConfig
from clockify_core.errors import RateLimited
from clockify_core.payloads import loads_without_nul
from clockify_core.sync.progress import Progress

log = structlog.get_logger(__name__)

# Statuses that mean "the endpoint is not there for this workspace": scope, plan or feature.
UNAVAILABLE = frozenset({400, 403, 404, 405, 501})


class UnexpectedBody(ClockifyApiError):
    """A list came back without its items: never read as an empty (so complete) listing."""


def transient(exc: ClockifyApiError) -> bool:
    return exc.status_code is None or exc.status_code == 429 or exc.status_code >= 500


def unavailable(exc: ClockifyApiError) -> bool:
    return exc.status_code in UNAVAILABLE


class Fetcher:
    """One pull's view of the API: ``concurrency`` requests in flight, pages retried."""

    def __init__(
        self,
        api: WorkspaceApi,
        config: SyncConfig,
        http: HttpClientConfig,
        progress: Progress,
        *,
        max_wait: float | None = None,
    ) -> None:
        self.api = api
        self.config = config
        self.http = http
        self.progress = progress
        self.max_wait = max_wait
        self.slots = asyncio.Semaphore(config.concurrency)
        self.requests = 0

    @property
    def workspace_id(self) -> str:
        return self.api.workspace_id

    async def call(
        self, method: str, path: str, *, api: ApiKind = "api", params: Mapping[str, Any] | None = None,
        json: Any = None, parse: bool = True,
    ) -> tuple[Any, httpx.Response]:
        """One request, retried while transient; returns the parsed body (None without ``parse``:
        the caller reads it with :func:`parse_body`) and the response. A body that is not JSON
        is final, not retried."""
        attempt = 1
        while True:
            try:
                async with self.slots:
                    self.requests += 1
                    response = await self.api.request(
                        method, path, api=api, params=params, json=json, idempotent=True, max_wait=self.max_wait,
                    )
                    ensure_success(response)
                break
            except ClockifyApiError as exc:
                if not transient(exc) or attempt >= self.config.page_attempts:
                    raise
                delay = exc.retry_after if exc.retry_after is not None else self._backoff(attempt)
                if exc.status_code == 429 and self.max_wait is not None and delay > self.max_wait:
                    # Clockify asks for a longer pause than this pull may sleep in a job loop:
                    # the job gives the loop back (sync.run.guarded defers it) and resumes then.
                    raise RateLimited(f"Clockify answered 429 to {method} {path} and asked for {delay:.0f} s",
                                      retry_after=delay) from exc
                self.progress.error(exc.detail)
                log.info("sync.page_retry", workspace_id=self.workspace_id, path=path, status=exc.status_code,
                         attempt=attempt, delay=round(delay, 3))
                await asyncio.sleep(delay)
                attempt += 1
        return parse_body(method, path, response) if parse else None, response

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.http.backoff_max, self.http.backoff_base * 2.0 ** (attempt - 1))
        return ceiling / 2 + random.random() * ceiling / 2  # noqa: S311 - jitter, not security

    async def get(self, path: str, *, api: ApiKind = "api", params: Mapping[str, Any] | None = None) -> Any:
        body, _ = await self.call("GET", path, api=api, params=params)
        return body

    async def page(
        self, path: str, page: int, size: int, *, api: ApiKind = "api", params: Mapping[str, Any] | None = None,
        size_param: str = "page-size", items_path: tuple[str, ...] = (), strict: bool = False,
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of a GET list: its items and whether it is the last (:meth:`page_into`)."""
        items: list[dict[str, Any]] = []
        _, last = await self.page_into(items.extend, path, page, size, api=api, params=params,
                                       size_param=size_param, items_path=items_path, strict=strict)
        return items, last

    async def page_into(
        self, take: Callable[[list[dict[str, Any]]], None], path: str, page: int, size: int, *,
        api: ApiKind = "api", params: Mapping[str, Any] | None = None, size_param: str = "page-size",
        items_path: tuple[str, ...] = (), strict: bool = False,
    ) -> tuple[int, bool]:
        """One page of a GET list, its items handed to ``take`` as soon as they are parsed:
        how many there were and whether it is the last.

        The parsed page lives only while ``take`` runs (:meth:`Sink.take` keeps COPY records,
        not the JSON).
        ``strict``: a body without a list at ``items_path`` raises :class:`UnexpectedBody`
        instead of counting as an empty last page (which a complete listing would tombstone on).
        """
        query = {**(params or {}), "page": page, size_param: size}
        _, response = await self.call("GET", path, api=api, params=query, parse=False)
        with collector_paused():
            body = parse_body("GET", path, response)
            if strict and not isinstance(dig_raw(body, items_path), list):
                raise UnexpectedBody(f"Clockify answered GET {path} without the list of items",
                                     status_code=response.status_code, method="GET", url=path)
            items = dig(body, items_path)
            count = len(items)
            take(items)
            del body, items
        self.progress.page(count)
        return count, is_last_page(response, count, size)

    async def pages(
        self, path: str, size: int | None, *, api: ApiKind = "api", params: Mapping[str, Any] | None = None,
        size_param: str = "page-size", items_path: tuple[str, ...] = (), first: int = 1,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every page of a GET list from page ``first``, in order; only the last can be empty and
        it is not yielded, so a caller counting what it got knows the next page to ask for.
        ``size=None`` reads an unpaginated list."""
        if size is None:
            body = await self.get(path, api=api, params=params)
            self.progress.page()
            yield dig(body, items_path)
            return
        number = first
        while True:
            items, last = await self.page(path, number, size, api=api, params=params, size_param=size_param,
                                          items_path=items_path)
            if items:
                yield items
            if last:
                return
            number += 1


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a page is parsed, converted and dropped.

    A 5,000-entry page parses into about 40,000 dicts and lists that all live until the page
    is converted, then all die by reference counting. With the collector on, each 700 of
    them start a young collection that walks and promotes them, and every few pages their
    promotion into the oldest generation sets off a full collection over the whole heap
    (the add-on's included): about a third of a bootstrap's CPU. Nothing here can await,
    so only this synchronous stretch runs with the collector off; it is on again before
    the next request. Memory does not grow: the page's objects are freed by reference
    counting either way, and responses no longer wait for the collector
    (:func:`clockify_core.client.client.released`).
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def parse_body(method: str, path: str, response: httpx.Response) -> Any:
    """The JSON of a successful answer (None when empty), without NUL characters."""
    try:
        return loads_without_nul(response.content) if response.content.strip() else None
    except orjson.JSONDecodeError as exc:
        raise ClockifyApiError(
            f"Clockify answered {method} {path} with a body that is not JSON",
            status_code=None, method=method, url=path,
        ) from exc


def dig_raw(body: Any, path: tuple[str, ...]) -> Any:
    """Whatever is at ``path`` in ``body`` (None when a step is missing)."""
    for key in path:
        body = body.get(key) if isinstance(body, dict) else None
    return body


def dig(body: Any, path: tuple[str, ...]) -> list[dict[str, Any]]:
    """The list at ``path`` in ``body``, keeping only objects (anything else cannot be mirrored)."""
    body = dig_raw(body, path)
    if not isinstance(body, list):
        return []
    return [item for item in body if isinstance(item, dict)]
