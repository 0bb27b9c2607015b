"""Page loops: page numbering, the Last-Page header and the short-page rule."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from clockify_core.client import ClockifyApiError

BACKEND = "https://api.clockify.me/api"
REPORTS = "https://reports.api.clockify.me"
PATH = "/v1/workspaces/ws1/projects"


class ListEndpoint:
    """A Clockify list endpoint over ``items``; ``last_page`` maps page -> header value."""

    def __init__(self, items: list[Any], last_page: dict[int, str] | None = None) -> None:
        self.items = items
        self.last_page = last_page or {}
        self.requests: list[httpx.Request] = []

    @property
    def pages_asked(self) -> list[int]:
        return [int(r.url.params["page"]) for r in self.requests]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        page, size = int(request.url.params["page"]), int(request.url.params["page-size"])
        chunk = self.items[(page - 1) * size : page * size]
        headers = {"Last-Page": self.last_page[page]} if page in self.last_page else {}
        return httpx.Response(200, json=chunk, headers=headers)


def api(make_client: Any, handler: Any) -> Any:
    return make_client(handler).for_workspace(
        "ws1", "tok", backend_url=BACKEND, reports_url=REPORTS, addon_key="a"
    )


async def collect(iterator: Any) -> list[Any]:
    return [page async for page in iterator]


async def test_short_page_ends_the_list_when_the_header_is_absent(make_client: Any) -> None:
    endpoint = ListEndpoint(list(range(5)))
    pages = await collect(
        api(make_client, endpoint).pages(PATH, page_size=2, params={"archived": "false"})
    )
    assert pages == [[0, 1], [2, 3], [4]]
    assert endpoint.pages_asked == [1, 2, 3]
    assert all(
        r.url.params["archived"] == "false" and r.url.params["page-size"] == "2"
        for r in endpoint.requests
    )


async def test_exact_multiple_needs_one_empty_page(make_client: Any) -> None:
    endpoint = ListEndpoint(list(range(4)))
    assert await collect(api(make_client, endpoint).pages(PATH, page_size=2)) == [[0, 1], [2, 3]]
    assert endpoint.pages_asked == [1, 2, 3]


async def test_empty_first_page_yields_nothing(make_client: Any) -> None:
    endpoint = ListEndpoint([])
    assert await collect(api(make_client, endpoint).pages(PATH, page_size=50)) == []
    assert endpoint.pages_asked == [1]


async def test_last_page_true_on_a_full_page_stops(make_client: Any) -> None:
    endpoint = ListEndpoint(list(range(10)), last_page={1: "false", 2: "TRUE"})
    assert await collect(api(make_client, endpoint).pages(PATH, page_size=2)) == [[0, 1], [2, 3]]
    assert endpoint.pages_asked == [1, 2]


async def test_last_page_false_on_a_short_page_keeps_going(make_client: Any) -> None:
    # Page 1 comes back short but says more follow (the header is authoritative).
    items = [0, 1, 2, 3, 4]
    answers = {1: ([0], "false"), 2: ([1, 2, 3], "false"), 3: ([4], None)}
    seen: list[int] = []

    def clockify(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        seen.append(page)
        chunk, flag = answers[page]
        return httpx.Response(200, json=chunk, headers={"Last-Page": flag} if flag else {})

    pages = await collect(api(make_client, clockify).pages(PATH, page_size=3))
    assert [x for page in pages for x in page] == items
    assert seen == [1, 2, 3]


async def test_empty_page_stops_even_with_last_page_false(make_client: Any) -> None:
    endpoint = ListEndpoint([1, 2], last_page={1: "false", 2: "false"})
    assert await collect(api(make_client, endpoint).pages(PATH, page_size=2)) == [[1, 2]]
    assert endpoint.pages_asked == [1, 2]


async def test_unreadable_header_falls_back_to_the_short_page_rule(make_client: Any) -> None:
    endpoint = ListEndpoint([1, 2, 3], last_page={1: "maybe", 2: "1"})
    assert await collect(api(make_client, endpoint).pages(PATH, page_size=2)) == [[1, 2], [3]]


async def test_iterate_yields_items_and_max_pages_bounds_the_loop(make_client: Any) -> None:
    endpoint = ListEndpoint(list(range(7)))
    ws = api(make_client, endpoint)
    assert [item async for item in ws.iterate(PATH, page_size=3)] == list(range(7))
    assert await collect(ws.pages(PATH, page_size=2, max_pages=2)) == [[0, 1], [2, 3]]


async def test_a_non_list_page_is_an_error(make_client: Any) -> None:
    ws = api(make_client, lambda r: httpx.Response(200, json={"items": []}))
    with pytest.raises(ClockifyApiError, match="JSON array"):
        await collect(ws.pages(PATH))
    with pytest.raises(ValueError, match="page_size"):
        await collect(ws.pages(PATH, page_size=0))


async def test_a_failing_page_raises(make_client: Any) -> None:
    answers = [httpx.Response(200, json=[1, 2]), httpx.Response(403, json={"message": "no"})]
    ws = api(make_client, lambda r: answers.pop(0))
    with pytest.raises(ClockifyApiError) as caught:
        await collect(ws.pages(PATH, page_size=2))
    assert caught.value.status_code == 403


class DetailedReport:
    """POST /reports/detailed paginated by ``detailedFilter.page``/``pageSize`` (or top level)."""

    def __init__(self, entries: list[Any], filter_key: str | None = "detailedFilter") -> None:
        self.entries = entries
        self.filter_key = filter_key
        self.bodies: list[dict[str, Any]] = []
        self.fail_first_with: int | None = None
        self.items_key = "timeEntries"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        if self.fail_first_with is not None:
            status, self.fail_first_with = self.fail_first_with, None
            return httpx.Response(status)
        paging = body[self.filter_key] if self.filter_key else body
        page, size = paging["page"], paging["pageSize"]
        chunk = self.entries[(page - 1) * size : page * size]
        return httpx.Response(200, json={"totals": [{"totalTime": 1}], self.items_key: chunk})


async def test_report_pages_in_the_body(make_client: Any) -> None:
    report = DetailedReport([{"id": i} for i in range(5)])
    report.fail_first_with = 503  # a report POST is a read: retried
    body = {"dateRangeStart": "2026-01-01T00:00:00Z", "detailedFilter": {"sortColumn": "DATE"}}
    ws = api(make_client, report)
    pages = await collect(ws.report_pages("/v1/workspaces/ws1/reports/detailed", body, 2))
    assert [[e["id"] for e in page] for page in pages] == [[0, 1], [2, 3], [4]]
    assert report.bodies[1]["detailedFilter"] == {"sortColumn": "DATE", "page": 1, "pageSize": 2}
    assert [b["detailedFilter"]["page"] for b in report.bodies] == [1, 1, 2, 3]
    assert body == {
        "dateRangeStart": "2026-01-01T00:00:00Z",
        "detailedFilter": {"sortColumn": "DATE"},
    }


async def test_report_pages_read_either_spelling_of_the_entries(make_client: Any) -> None:
    # The spec says timeEntries; clients of the live reports API read timeentries.
    report = DetailedReport([{"_id": str(i)} for i in range(3)])
    report.items_key = "timeentries"
    pages = await collect(api(make_client, report).report_pages("/v1/workspaces/ws1/reports/detailed", {}, 2))
    assert [[e["_id"] for e in page] for page in pages] == [["0", "1"], ["2"]]


async def test_report_pages_at_the_top_level_and_other_keys(make_client: Any) -> None:
    report = DetailedReport([{"id": i} for i in range(4)], filter_key=None)
    ws = api(make_client, report)
    pages = await collect(
        ws.report_pages("/v1/workspaces/ws1/reports/detailed", {}, 4, filter_key=None)
    )
    assert len(pages) == 1
    assert [b["page"] for b in report.bodies] == [1, 2]
    # A body without the items is not an empty last page: the listing would end silently.
    with pytest.raises(ClockifyApiError, match="'expenses'"):
        await collect(ws.report_pages("/v1/r", {}, 4, filter_key=None, items_key="expenses"))
