"""Reference data: the workspace record and every list endpoint in scope, pulled whole.

Endpoints are pulled concurrently (tasks after projects, since they are read per
project). A complete listing is the truth for its kind: rows it did not rewrite are
tombstoned (``sync.reference_deletions``). An endpoint Clockify does not offer to the
workspace (403: scope, plan or disabled feature; 404/405/501) is recorded on its
``sync_state`` row, left alone for a day, and does not fail the job.

A per-project listing (tasks: a request per project) stopped by a spent rate budget keeps
the projects it has written and the time it began (:meth:`Pull.keep`); the next claim lists
only the others and judges deletions from that first start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import select

from clockify_core.catalog import FREE_PLAN, PLANS
from clockify_core.client import ClockifyApiError
from clockify_core.db.base import utcnow
from clockify_core.errors import RateLimited
from clockify_core.installations.models import Installation
from clockify_core.jobs import queue
from clockify_core.jobs.models import JobKind
from clockify_core.mirror.models import Project
from clockify_core.sync import state
from clockify_core.sync.endpoints import Endpoint, workspace_endpoint
from clockify_core.sync.fetch import unavailable
from clockify_core.sync.run import Pull, instant
from clockify_core.sync.sink import Sink
from clockify_core.sync.together import pool

log = structlog.get_logger(__name__)

UNAVAILABLE_RETRY = timedelta(days=1)


def plan_of(record: dict[str, Any]) -> str | None:
    """The plan in a workspace record: ``featureSubscriptionType`` like ``PRO_YEAR_2021`` or ``FREE``."""
    value = record.get("featureSubscriptionType")
    if not isinstance(value, str) or not value:
        return None
    head = value.upper().split("_", 1)[0]
    return head if head in PLANS else None


async def pull_workspace(pull: Pull) -> None:
    """Store the workspace record (``entities`` kind ``workspace``) and learn its plan.

    This is a bootstrap's first request, so no request of a Free-plan workspace escapes its
    budget: while the plan is unknown the read is spent on the Free budget (a fresh bucket
    grants it at once, so a paid workspace loses nothing), and the pull's further requests
    on the budget of the plan it reads (still unknown, e.g. an unreadable record: paid).
    """
    operation = workspace_endpoint(pull.runtime.profile)
    if operation is None:
        return
    pull.progress.step("workspace")
    path = operation.format_path({"workspaceId": pull.workspace_id})
    try:
        if pull.installation.subscription_plan is None:
            pull.spend_on(FREE_PLAN)
            try:
                await _read_workspace(pull, path)
            except RateLimited:
                # Another job (a registration) has already called Clockify at the paid rate
                # before anyone knew the plan: waiting for the Free budget cannot undo that,
                # and would hold up a paid workspace's onboarding for minutes.
                pull.spend_on(None)
                await _read_workspace(pull, path)
        else:
            await _read_workspace(pull, path)
    finally:
        pull.spend_on(pull.installation.subscription_plan)


async def _read_workspace(pull: Pull, path: str) -> None:
    try:
        record = await pull.fetcher.get(path)
    except ClockifyApiError as exc:
        if not unavailable(exc):
            raise
        log.info("sync.workspace_unavailable", workspace_id=pull.workspace_id, status=exc.status_code)
        return
    if not isinstance(record, dict):
        return
    await pull.writer.upsert("workspace", pull.workspace_id, [record], written_by=pull.written_by)
    plan = plan_of(record)
    previous = pull.installation.subscription_plan
    if plan is not None and plan != previous:
        async with pull.ctx.transaction() as session:
            installation = await session.get(Installation, pull.workspace_id)
            if installation is not None:
                installation.subscription_plan = plan
                if previous == FREE_PLAN:  # the events the Free plan left to the syncs get their webhooks now
                    await queue.enqueue(session, pull.workspace_id, JobKind.REGISTER_WEBHOOKS)
        pull.installation.subscription_plan = plan
        log.info("sync.plan", workspace_id=pull.workspace_id, plan=plan)


async def pull_reference(pull: Pull, endpoints: Iterable[Endpoint], *, on_done: Any = None) -> None:
    """Pull ``endpoints`` concurrently; raises the first real failure after all have run."""
    chosen = list(endpoints)
    first = [e for e in chosen if not e.per_project]
    later = [e for e in chosen if e.per_project]
    failures: list[BaseException] = []
    for group in (first, later):
        results = await asyncio.gather(*(_one(pull, e, on_done) for e in group), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                failures.append(result)
    if failures:
        raise failures[0]


async def _one(pull: Pull, endpoint: Endpoint, on_done: Any) -> None:
    step = f"reference:{endpoint.kind}"
    saved = pull.resumed(step)
    started = instant(saved.get("started")) or utcnow()
    projects: set[str] = set(saved.get("projects", []))  # listed completely by an earlier claim
    first_page = int(saved.get("page", 1))  # pages before it were written by an earlier claim
    page = first_page
    ws = pull.workspace_id
    sink = Sink(pull.writer, endpoint.kind, ws, written_by=pull.written_by, batch_rows=pull.config.batch_rows,
                writers=1, progress=pull.progress)
    try:
        if endpoint.per_project:
            await _per_project(pull, endpoint, sink, projects)
        else:
            async for items in pull.fetcher.pages(
                endpoint.url(ws), endpoint.page_size, api=endpoint.api, params=endpoint.params,
                size_param=endpoint.size_param, items_path=endpoint.items_path, first=first_page,
            ):
                await sink.add(items)
                page += 1
        written = await sink.close()
    except RateLimited:
        await sink.close()
        if projects or page > 1:
            await pull.keep(step, {"started": started.isoformat(), "projects": sorted(projects), "page": page})
        raise
    except ClockifyApiError as exc:
        await sink.abort()
        async with pull.ctx.transaction() as session:
            await state.kind_failed(session, ws, endpoint.kind, started=started, error=exc.detail)
            if unavailable(exc):
                # Not offered to this workspace: look again tomorrow, carry on now.
                await state.set_fields(session, ws, endpoint.kind, parked_until=utcnow() + UNAVAILABLE_RETRY,
                                       parked_reason=state.unavailable_reason(exc.status_code))
        if unavailable(exc):
            log.info("sync.endpoint_unavailable", workspace_id=ws, operation=endpoint.operation_id,
                     status=exc.status_code)
            if on_done is not None:
                await on_done(endpoint)
            return
        raise
    except BaseException:
        await sink.abort()
        raise
    await pull.keep(step, None)
    gone = 0
    # A listing resumed by page number may have missed a row that moved to an earlier page
    # between claims (a deletion before it): no tombstones from it; the next whole listing has them.
    if pull.config.reference_deletions and first_page == 1:
        gone = await pull.writer.tombstone_unseen(endpoint.kind, ws, before=started, written_by=pull.written_by)
    total = await pull.writer.count_live(endpoint.kind, ws)
    async with pull.ctx.transaction() as session:
        await state.kind_succeeded(session, ws, endpoint.kind, started=started, rows=written, total=total,
                                   watermark=started)
    log.info("sync.endpoint_done", workspace_id=ws, kind=endpoint.kind, rows=written, deleted=gone)
    if on_done is not None:
        await on_done(endpoint)


async def _per_project(pull: Pull, endpoint: Endpoint, sink: Sink, done: set[str]) -> None:
    """List ``endpoint`` for every live project not in ``done``, adding each to ``done`` once its
    rows are all handed to ``sink``."""
    ws = pull.workspace_id
    async with pull.runtime.sessions() as session:
        projects = list((await session.execute(
            select(Project.id).where(Project.workspace_id == ws, Project.deleted_at.is_(None)).order_by(Project.id)
        )).scalars())

    async def one(project_id: str) -> None:
        try:
            async for page in pull.fetcher.pages(
                endpoint.url(ws, project_id), endpoint.page_size, api=endpoint.api, params=endpoint.params,
                size_param=endpoint.size_param, items_path=endpoint.items_path,
            ):
                # Task bodies do not always name their project; the path does.
                await sink.add([{**item, "projectId": item.get("projectId") or project_id} for item in page])
        except ClockifyApiError as exc:
            if exc.status_code != 404:  # the project was deleted meanwhile
                raise
        done.add(project_id)

    await pool(one, [p for p in projects if p not in done], pull.config.concurrency)


def due(endpoints: Iterable[Endpoint], states: dict[str, Any], *, every: timedelta, force: bool) -> list[Endpoint]:
    """Endpoints whose last complete listing is older than ``every`` (and not set aside)."""
    now = utcnow()
    out = []
    for endpoint in endpoints:
        row = states.get(endpoint.kind)
        if row is not None and row.parked_until is not None and row.parked_until > now and not force:
            continue
        if force or row is None or row.last_success_at is None or row.last_success_at <= now - every:
            out.append(endpoint)
    return out
