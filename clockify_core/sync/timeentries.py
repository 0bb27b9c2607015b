"""Pulling time entries: complete listings of a time range, the change feed, running timers.

A *range pull* lists every entry whose start lies in ``[start, end)`` and writes it
(snapshot semantics). Two sources give the same rows (:mod:`.normalize`):

* the detailed report, 1,000 rows a page for all users at once, with the total count
  on its first page, so the remaining pages are fetched concurrently;
* ``GET /v1/workspaces/{wid}/user/{uid}/time-entries``: per user, up to
  ``sync.page_size`` rows a page, users fetched concurrently.

With ``time_entry_source = "auto"`` a range is read per user, which costs less CPU per
entry (docs/benchmarks.md), unless requests are what binds (:func:`choose_source`): on
the Free plan (30 requests an hour) it is the report, in ranges of up to a year (the
widest a Free plan's report may cover), and on paid plans the report's
first page gives the range's count and the report goes on when per-user listing would
need ``sync.report_request_ratio`` times its requests (many users, few entries each).
Without the ``REPORTS_READ`` scope (or a reports URL) it is per user.

Because a range pull is complete, rows of that range it did not rewrite are gone
from Clockify: they are tombstoned (:meth:`BulkWriter.tombstone_unseen`), all of them
after a report, those of the users listed after a per-user pull.

A range pull stopped by a spent rate budget writes what it has read before it ends, and
its :class:`Coverage` says up to which start the report's rows are written; the resumed pull
lists the range from there (:meth:`~clockify_core.sync.run.Pull.range`).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import structlog
from sqlalchemy import select

from clockify_core.client import ClockifyApiError, is_last_page, items_key_of
from clockify_core.config import SyncConfig
from clockify_core.errors import RateLimited
from clockify_core.mirror.mapping import parse_time
from clockify_core.mirror.models import TimeEntry, User
from clockify_core.sync.bulk import BulkWriter
from clockify_core.sync.fetch import (
    Fetcher,
    UnexpectedBody,
    collector_paused,
    dig,
    parse_body,
    unavailable,
)
from clockify_core.sync.normalize import now_iso, report_entry, report_instant
from clockify_core.sync.progress import Progress
from clockify_core.sync.sink import Sink
from clockify_core.sync.together import pool

log = structlog.get_logger(__name__)

KIND = "time_entry"
Window = Literal["day", "week", "month", "year"]
REPORT_PATH = "/v1/workspaces/{workspace}/reports/detailed"
USER_PATH = "/v1/workspaces/{workspace}/user/{user}/time-entries"
RUNNING_PATH = "/v1/workspaces/{workspace}/time-entries/status/in-progress"
FEED_PATH = "/v1/workspaces/{workspace}/entities/{which}"
RUNNING_PAGE_MAX = 1000  # the in-progress list's documented maximum
# The longest range a Free-plan workspace's report may cover (docs/clockify.md, "Reports").
FREE_REPORT_SPAN = timedelta(days=366)


Source = Literal["report", "user"]
FeedKind = Literal["created", "updated", "deleted"]


class FeedUnavailable(Exception):
    """The change feed answered 4xx: not offered to this workspace (it is experimental)."""


def choose_source(config: SyncConfig, *, users: int, count: int, free_plan: bool) -> Source:
    """The cheaper source for a range of ``count`` entries among ``users`` users (``auto``).

    Per user is the default: fewer, larger pages and less work per entry. The report wins
    where requests are the binding constraint: always on the Free plan, and on paid plans
    when listing per user needs ``report_request_ratio`` times the report's requests.
    """
    if free_plan:
        return "report"
    report_pages = max(1, math.ceil(count / config.report_page_size))
    per_user = users + max(0, math.ceil(count / config.page_size) - 1)
    return "report" if per_user >= config.report_request_ratio * report_pages else "user"


def floor_to(moment: datetime, unit: Window) -> datetime:
    moment = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "week":
        return moment - timedelta(days=moment.weekday())
    if unit == "month":
        return moment.replace(day=1)
    if unit == "year":
        return moment.replace(month=1, day=1)
    return moment


def next_boundary(moment: datetime, unit: Window) -> datetime:
    start = floor_to(moment, unit)
    if unit == "day":
        return start + timedelta(days=1)
    if unit == "week":
        return start + timedelta(days=7)
    if unit == "month":
        return start.replace(year=start.year + (start.month == 12), month=start.month % 12 + 1)
    return start.replace(year=start.year + 1)


def windows(start: datetime, end: datetime, unit: Window) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut at calendar boundaries (UTC): the first and last may be partial."""
    out: list[tuple[datetime, datetime]] = []
    cursor = start
    while cursor < end:
        stop = min(next_boundary(cursor, unit), end)
        out.append((cursor, stop))
        cursor = stop
    return out


def merge_days(days: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
    """Whole UTC days touched, merged into contiguous ranges."""
    ranges: list[tuple[datetime, datetime]] = []
    for day in sorted({floor_to(d, "day") for d in days}):
        if ranges and ranges[-1][1] == day:
            ranges[-1] = (ranges[-1][0], day + timedelta(days=1))
        else:
            ranges.append((day, day + timedelta(days=1)))
    return ranges


class Coverage:
    """How far a report listing (ascending by start) is written: every row starting before
    ``until`` is. Pages may arrive in any order; only an unbroken run from page 1 counts, and
    rows starting exactly at ``until`` may sit on the next page, so a resumed listing starts
    there, inclusive."""

    def __init__(self, start: datetime) -> None:
        self.until = start
        self._pages: dict[int, datetime | None] = {}
        self._next = 1

    def page(self, number: int, last_start: datetime | None) -> None:
        """Page ``number`` of the current listing is taken; ``last_start``: its last row's start."""
        self._pages[number] = last_start
        while self._next in self._pages:
            last = self._pages.pop(self._next)
            if last is not None and last > self.until:
                self.until = last
            self._next += 1

    def reached(self, end: datetime) -> None:
        """A listing ending at ``end`` is complete; the next one numbers its pages from 1."""
        self.until = max(self.until, end)
        self._pages.clear()
        self._next = 1


@dataclass
class RangeResult:
    rows: int
    tombstoned: int
    source: str
    requests: int


class TimeEntryPuller:
    def __init__(
        self,
        fetcher: Fetcher,
        writer: BulkWriter,
        config: SyncConfig,
        progress: Progress,
        *,
        written_by: str,
        report: bool,
        sessions: Any,
        free_plan: bool = False,
    ) -> None:
        self.fetcher = fetcher
        self.writer = writer
        self.config = config
        self.progress = progress
        self.written_by = written_by
        self.report = report and config.time_entry_source != "user"
        self.sessions = sessions
        self.free_plan = free_plan
        self.workspace_id = fetcher.workspace_id
        self._users: list[str] | None = None

    # sources --------------------------------------------------------------------------
    def _sink(self) -> Sink:
        return Sink(self.writer, KIND, self.workspace_id, written_by=self.written_by,
                    batch_rows=self.config.batch_rows, writers=self.config.writers, progress=self.progress)

    async def user_ids(self) -> list[str]:
        """Every user the mirror knows (all statuses); read from the API when it knows none."""
        if self._users is None:
            async with self.sessions() as session:
                ids = list((await session.execute(select(User.id).where(User.workspace_id == self.workspace_id))).scalars())
            if not ids:
                path = f"/v1/workspaces/{self.workspace_id}/users"
                async for page in self.fetcher.pages(path, self.config.page_size, params={"status": "ALL"}):
                    await self.writer.upsert("user", self.workspace_id, page, written_by=self.written_by)
                    ids.extend(str(u["id"]) for u in page if isinstance(u.get("id"), str))
            self._users = ids
        return self._users

    async def pull(
        self, start: datetime, end: datetime, *, user_ids: Sequence[str] | None = None, run_started: datetime,
        reconcile: bool = True, coverage: Coverage | None = None,
    ) -> RangeResult:
        """List ``[start, end)`` completely, write it, and tombstone what it no longer has.

        With ``coverage`` the report lists from ``coverage.until`` (what an earlier pull of the
        range wrote, whose ``run_started`` this one reuses) and records how far it gets; a
        :class:`RateLimited` ends the pull after writing what was read.
        """
        coverage = coverage or Coverage(start)
        before = self.fetcher.requests
        source: Source = "report" if self.report and user_ids is None else "user"
        decide = self.config.time_entry_source == "auto" and not self.free_plan
        if source == "report" and decide and await self._per_user_always_cheaper():
            source = "user"
        listed: list[str] = []
        sink = self._sink()
        try:
            if source == "report" and not await self._report(sink, coverage, end, decide=decide):
                source = "user"
            if source == "user":
                users = list(user_ids) if user_ids is not None else await self.user_ids()
                listed = await self._per_user(sink, start, end, users)
            written = await sink.close()
        except RateLimited:
            await sink.close()  # what was read is kept: Coverage tells the next pull where to go on
            raise
        except BaseException:
            await sink.abort()
            raise
        gone = 0
        if reconcile:
            # A per-user pull saw only the users it listed: other users' rows are not its to judge.
            gone = await self.writer.tombstone_unseen(
                KIND, self.workspace_id, before=run_started, start=start, end=end,
                user_ids=listed if source == "user" else None, written_by=self.written_by,
            )
        return RangeResult(written, gone, source, self.fetcher.requests - before)

    async def _per_user_always_cheaper(self) -> bool:
        """Whether :func:`choose_source` picks per user for any count, so the report's probe is waste."""
        config = self.config
        return config.page_size >= config.report_page_size and len(await self.user_ids()) < config.report_request_ratio

    async def _report(self, sink: Sink, coverage: Coverage, end: datetime, *, decide: bool) -> bool:
        """Pull ``[coverage.until, end)`` through the report; False when ``decide`` finds per user
        cheaper (page 1 is written).

        On the Free plan (where ``decide`` is off) a range longer than :data:`FREE_REPORT_SPAN`,
        such as a history backfill's gap step, is read in spans of that length.
        """
        start = coverage.until
        if not self.free_plan:
            if not await self._report_range(sink, coverage, start, end, decide=decide):
                return False
            coverage.reached(end)
            return True
        while start < end:
            stop = min(start + FREE_REPORT_SPAN, end)
            await self._report_range(sink, coverage, start, stop, decide=False)
            coverage.reached(stop)
            start = stop
        return True

    async def _report_range(self, sink: Sink, coverage: Coverage, start: datetime, end: datetime, *,
                            decide: bool) -> bool:
        size = self.config.report_page_size
        path = REPORT_PATH.format(workspace=self.workspace_id)
        base = {
            "dateRangeStart": report_instant(start),
            "dateRangeEnd": report_instant(end - timedelta(milliseconds=1)),
            "sortOrder": "ASCENDING",
            "exportType": "JSON",
            "amountShown": "EARNED",
        }

        async def fetch(page: int) -> tuple[int, bool, dict[str, Any]]:
            async with sink.room(size):
                _, response = await self.fetcher.call(
                    "POST", path, api="reports", json={**base, "detailedFilter": {"page": page, "pageSize": size}},
                    parse=False,
                )
                with collector_paused():
                    body = parse_body("POST", path, response)
                    key = items_key_of(body)
                    if key is None:
                        raise UnexpectedBody(f"Clockify answered the detailed report (page {page}) without "
                                             "timeEntries", status_code=response.status_code, method="POST", url=path)
                    rows = dig(body, (key,))
                    count, last = len(rows), is_last_page(response, len(rows), size)
                    self.progress.page(count)
                    entries = [report_entry(row, self.workspace_id) for row in rows]
                    sink.take(entries)
                    coverage.page(page, entry_start(entries[-1]) if entries else None)
                    del entries
                    body.pop(key, None)  # only the totals are read later; free the page first
                    del rows, response
            await sink.ready()
            return count, last, body

        _, last, body = await fetch(1)
        if last:
            return True
        count = _entries_count(body)
        if count is None:
            page = 2
            while not (await fetch(page))[1]:
                page += 1
            return True
        pages = math.ceil(count / size)
        if decide and choose_source(self.config, users=len(await self.user_ids()), count=count,
                                    free_plan=self.free_plan) == "user":
            return False
        outcomes: dict[int, bool] = {}

        async def one(page: int) -> None:
            outcomes[page] = (await fetch(page))[1]

        await pool(one, range(2, pages + 1), self.config.concurrency)
        # Entries added while paging push rows past the counted pages: read on until the end.
        page, last = pages, outcomes[pages] if pages >= 2 else last
        while not last:
            page += 1
            last = (await fetch(page))[1]
        return True

    async def _per_user(self, sink: Sink, start: datetime, end: datetime, users: Sequence[str]) -> list[str]:
        """List each user's entries; returns the users whose listing is complete."""
        size = self.config.page_size
        params = {"start": now_iso(start), "end": now_iso(end - timedelta(seconds=1))}
        gone: set[str] = set()

        async def one(user_id: str) -> None:
            path = USER_PATH.format(workspace=self.workspace_id, user=user_id)
            number, last = 1, False
            try:
                while not last:
                    # Parsed straight into COPY records: the page's JSON is gone before the wait.
                    async with sink.room(size):
                        _, last = await self.fetcher.page_into(sink.take, path, number, size, params=params,
                                                               strict=True)
                    await sink.ready()
                    number += 1
            except ClockifyApiError as exc:
                if exc.status_code != 404:
                    raise
                # Removed from the workspace: the report still has their entries, so keep the mirror's.
                gone.add(user_id)
                log.info("sync.user_gone", workspace_id=self.workspace_id, user_id=user_id)

        await pool(one, users, self.config.concurrency)
        return [u for u in users if u not in gone]

    # running timers and the change feed ------------------------------------------------
    async def running(self) -> list[dict[str, Any]]:
        """Write every running timer; returns them."""
        path = RUNNING_PATH.format(workspace=self.workspace_id)
        found: list[dict[str, Any]] = []
        async for page in self.fetcher.pages(path, min(RUNNING_PAGE_MAX, self.config.page_size)):
            found.extend(page)
        if found:
            # The window listings return them again: merged then, not met in a direct COPY.
            written = await self.writer.upsert(KIND, self.workspace_id, found, written_by=self.written_by, ahead=True)
            self.progress.wrote(written)
        return found

    async def stale_running(self, running: Sequence[dict[str, Any]], before: datetime) -> list[datetime]:
        """Starts of mirror rows still shown running that Clockify no longer lists as running."""
        live = {str(entry.get("id")) for entry in running}
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(TimeEntry.id, TimeEntry.start_at).where(
                        TimeEntry.workspace_id == self.workspace_id, TimeEntry.deleted_at.is_(None),
                        TimeEntry.end_at.is_(None), TimeEntry.start_at < before,
                    )
                )
            ).all()
        return [start for entry_id, start in rows if entry_id not in live and start is not None]

    async def feed(self, which: FeedKind, start: datetime, end: datetime) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of the change feed for ``[start, end]``, in ranges of ``feed_window_days``."""
        path = FEED_PATH.format(workspace=self.workspace_id, which=which)
        size = self.config.feed_page_size
        step = timedelta(days=self.config.feed_window_days)
        cursor = start
        while cursor < end:
            stop = min(cursor + step, end)
            params = {"type": "TIME_ENTRY", "start": now_iso(cursor), "end": now_iso(stop)}
            page = 1
            while True:
                try:
                    body, response = await self.fetcher.call(
                        "GET", path, params={**params, "page": page, "limit": size}
                    )
                except ClockifyApiError as exc:
                    if unavailable(exc):
                        raise FeedUnavailable(exc.detail) from exc
                    raise
                items = dig(body, ("response",) if isinstance(body, dict) else ())
                self.progress.page(len(items))
                if items:
                    yield items
                if is_last_page(response, len(items), size):
                    break
                page += 1
            cursor = stop


def _entries_count(body: dict[str, Any]) -> int | None:
    totals = body.get("totals")
    if isinstance(totals, list) and totals and isinstance(totals[0], dict):
        count = totals[0].get("entriesCount")
        if isinstance(count, int) and not isinstance(count, bool):
            return count
    return None


def entry_start(doc: dict[str, Any]) -> datetime | None:
    """Start of a feed document (the entry itself, or the deleted entry under ``document``)."""
    body = doc.get("document") if isinstance(doc.get("document"), dict) else doc
    interval = body.get("timeInterval") if isinstance(body, dict) else None
    return parse_time(interval.get("start")) if isinstance(interval, dict) else None

