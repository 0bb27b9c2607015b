"""Page loops for Clockify list endpoints (docs/clockify.md#pagination).

Pages are numbered from 1. A loop stops after a page when:

1. the page is empty (nothing is yielded for it), or
2. the response carries ``Last-Page: true``, or
3. the header is absent (or unreadable) and the page is short (fewer items than the
   page size).

``Last-Page: false`` keeps going even after a short page: when present, the header is
authoritative (live probes report it; the OpenAPI spec does not document it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import httpx

LAST_PAGE_HEADER = "Last-Page"

FetchPage = Callable[[int], Awaitable[tuple[Sequence[Any], httpx.Response]]]


def last_page_flag(response: httpx.Response) -> bool | None:
    """``True``/``False`` from the ``Last-Page`` header, ``None`` when absent or unreadable."""
    value = response.headers.get(LAST_PAGE_HEADER)
    if value is None:
        return None
    value = value.strip().lower()
    if value == "true":
        return True
    if value == "false":
        return False
    return None


def is_last_page(response: httpx.Response, count: int, page_size: int) -> bool:
    """Whether the page that ``response`` carried, holding ``count`` items, ends the list."""
    if count == 0:
        return True
    flag = last_page_flag(response)
    if flag is not None:
        return flag
    return count < page_size


async def paginate(
    fetch: FetchPage, page_size: int, *, start_page: int = 1, max_pages: int | None = None
) -> AsyncIterator[list[Any]]:
    """Yield the items of each page ``fetch(page)`` returns until the stop rules say so.

    ``max_pages`` bounds the loop (a guard against an endpoint that never says stop);
    reaching it ends the iteration silently.
    """
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    if start_page < 1:
        raise ValueError("pages are numbered from 1")
    page = start_page
    fetched = 0
    while max_pages is None or fetched < max_pages:
        items, response = await fetch(page)
        fetched += 1
        if items:
            yield list(items)
        if is_last_page(response, len(items), page_size):
            return
        page += 1
