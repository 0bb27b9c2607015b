"""The flow executor: claim queued runs, perform their actions, record every step.

Runs are a durable queue in ``flow_runs`` (claimed like the inbox: a lease per run,
``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so actions survive restarts and happen at
least once: after each action the run stores its results and where it resumes
(``state.next`` and the variables), so a run taken over after a crash repeats at most
the action that was in flight. A failing action is retried with backoff by putting
the run back in the queue (``max_action_attempts``); then the run fails, and
``failure_threshold`` failed runs in a row disable the flow with the reason.

Loop guard, write side: before a ``clockify_api`` write the ids it targets are
remembered for the flow (``flow_loop_marks``, depth = this run's depth + 1), committed
before the call so the webhook it causes cannot overtake it; a created entity's id is
remembered as soon as the response names it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import httpx
import orjson
import structlog
from sqlalchemy import Table, and_, delete, exists, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core.client import ClockifyApiError, decode_json
from clockify_core.db.base import utcnow
from clockify_core.errors import ClockifyError, RateLimited
from clockify_core.explorer.models import ApiCall
from clockify_core.flows import network
from clockify_core.flows.actions import (
    Action,
    ClockifyApiAction,
    HttpRequestAction,
    SetVariableAction,
    StopAction,
    mask,
    operation_allowed,
    render_api_call,
    render_http,
)
from clockify_core.flows.conditions import ConditionError
from clockify_core.flows.engine import (
    FlowEngine,
    event_context,
    flow_engine,
    flows_switched_on,
    record_failure,
    record_success,
    settings_map,
)
from clockify_core.flows.models import FINISHED, Flow, FlowLoopMark, FlowRun, RunStatus
from clockify_core.flows.paths import Context
from clockify_core.flows.templates import TemplateError
from clockify_core.lifecycle.models import Installation, InstallationStatus
from clockify_core.lifecycle.repository import installation_api
from clockify_core.observability.logging import redact_text
from clockify_core.ratelimit import free_plan_limit
from clockify_core.runtime import Runtime
from clockify_core.webhooks.inbox import backoff_seconds

log = structlog.get_logger(__name__)
EXCERPT_CHARS = 500
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class ActionFailed(Exception):
    def __init__(self, message: str, *, retryable: bool, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.result = result or {}


class LeaseLost(Exception):
    pass


@dataclass
class ClaimedRun:
    id: int
    flow_id: str
    workspace_id: str
    event_type: str | None
    inbox_event_id: int | None
    chain_depth: int
    attempts: int
    trigger: dict[str, Any]
    state: dict[str, Any]
    actions: list[dict[str, Any]]
    started_at: datetime


@dataclass
class _Step:
    result: dict[str, Any]
    stop: bool = False
    api_call: ApiCall | None = None
    marks: list[str] = field(default_factory=list)


# Claiming ------------------------------------------------------------------------------------

async def claim(
    session: AsyncSession, *, worker_id: str, limit: int, lease_seconds: float, now: datetime | None = None
) -> list[ClaimedRun]:
    now = now or utcnow()
    r = cast(Table, FlowRun.__table__)
    due = or_(
        and_(r.c.status == RunStatus.QUEUED, r.c.next_attempt_at <= now),
        and_(r.c.status == RunStatus.RUNNING, r.c.locked_until < now),
    )
    # No outbound calls for a paused (INACTIVE) workspace: its runs wait.
    active = exists().where(
        Installation.workspace_id == r.c.workspace_id, Installation.status == InstallationStatus.ACTIVE
    )
    candidates = select(r.c.id).where(due, active).order_by(r.c.id).limit(limit)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True, of=r)
    rows = (
        await session.execute(
            update(r)
            .where(r.c.id.in_(candidates.scalar_subquery()))
            .values(
                status=RunStatus.RUNNING, locked_by=worker_id, locked_until=now + timedelta(seconds=lease_seconds),
                attempts=r.c.attempts + 1, started_at=func_coalesce(r.c.started_at, now),
            )
            .returning(
                r.c.id, r.c.flow_id, r.c.workspace_id, r.c.event_type, r.c.inbox_event_id, r.c.chain_depth,
                r.c.attempts, r.c.trigger, r.c.state, r.c.actions, r.c.started_at,
            )
        )
    ).all()
    return sorted(
        (
            ClaimedRun(
                id=row.id, flow_id=row.flow_id, workspace_id=row.workspace_id, event_type=row.event_type,
                inbox_event_id=row.inbox_event_id, chain_depth=row.chain_depth, attempts=row.attempts,
                trigger=dict(row.trigger or {}), state=dict(row.state or {}), actions=list(row.actions or []),
                started_at=row.started_at or now,
            )
            for row in rows
        ),
        key=lambda run: run.id,
    )


def func_coalesce(column: Any, value: datetime) -> Any:
    return func.coalesce(column, literal(value, type_=FlowRun.__table__.c.started_at.type))


# Executing -----------------------------------------------------------------------------------

async def run_due(runtime: Runtime, *, limit: int | None = None) -> int:
    """Claim one batch of due runs and execute them; returns how many were claimed."""
    config = runtime.settings.flows
    engine = flow_engine(runtime)
    async with runtime.sessions.begin() as session:
        runs = await claim(
            session, worker_id=runtime.instance_id, limit=limit or config.batch_size, lease_seconds=config.lease_seconds
        )
    for run in runs:
        if runtime.stop.is_set():
            break  # the rest come back when their leases run out
        try:
            await execute(runtime, engine, run)
        except LeaseLost:
            log.warning("flows.lease_lost", run_id=run.id)
    return len(runs)


async def execute(runtime: Runtime, engine: FlowEngine, run: ClaimedRun) -> None:
    async with runtime.sessions() as session:
        flow = await session.get(Flow, run.flow_id)
        installation = await session.get(Installation, run.workspace_id)
    if flow is None or installation is None:
        return  # deleted with its flow (the run row went with it) or the workspace was purged
    settings = settings_map(installation.settings)
    if not flow.enabled or not flows_switched_on(settings):
        reason = "the flow was disabled" if not flow.enabled else "flows are switched off for the workspace"
        await _finish(runtime, run, RunStatus.SKIPPED, run.actions, error=f"not run: {reason}")
        return
    try:
        compiled = engine.compile(runtime, flow).compiled
    except ClockifyError as exc:
        await _finish(runtime, run, RunStatus.FAILED, run.actions, error=f"the definition is not valid: {exc.detail}")
        return
    state = {"next": 0, "vars": {}, "attempts": {}, **run.state}
    ctx = event_context(
        body=run.trigger.get("body"), event_type=run.event_type or "", source=run.trigger.get("source", "clockify"),
        source_ref=run.trigger.get("source_ref"), event_id=run.inbox_event_id,
        received_at=_parse_time(run.trigger.get("received_at")), workspace_id=run.workspace_id, settings=settings,
        variables=state["vars"],
    )
    results = list(run.actions)
    for index in range(int(state["next"]), len(compiled.actions)):
        action = compiled.actions[index]
        started = time.perf_counter()
        try:
            if not action.when.evaluate(ctx):
                results.append({"id": action.id, "type": action.type, "status": "skipped"})
                state["next"] = index + 1
                continue
            step = await _perform(runtime, engine, installation, run, action, ctx)
        except (ActionFailed, ConditionError, TemplateError) as exc:
            failed = exc if isinstance(exc, ActionFailed) else ActionFailed(str(exc), retryable=False)
            runtime.metrics.flow_action_duration.labels(action.type).observe(time.perf_counter() - started)
            await _action_failed(runtime, run, action, index, state, results, failed)
            return
        runtime.metrics.flow_action_duration.labels(action.type).observe(time.perf_counter() - started)
        step.result.setdefault("duration_ms", round((time.perf_counter() - started) * 1000))
        results.append(step.result)
        state["next"] = index + 1
        await _checkpoint(runtime, run, results, state, step)
        if step.stop:
            await _finish(runtime, run, RunStatus.STOPPED, results)
            return
    await _finish(runtime, run, RunStatus.SUCCEEDED, results)


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


async def _perform(
    runtime: Runtime, engine: FlowEngine, installation: Installation, run: ClaimedRun, action: Action, ctx: Context
) -> _Step:
    if isinstance(action, ClockifyApiAction):
        return await _clockify_api(runtime, installation, run, action, ctx)
    if isinstance(action, HttpRequestAction):
        return await _http_request(runtime, engine, action, ctx)
    if isinstance(action, SetVariableAction):
        value = action.value.render(ctx)
        ctx.vars[action.name] = value
        return _Step({"id": action.id, "type": action.type, "status": "succeeded", "variable": {action.name: value}})
    assert isinstance(action, StopAction)
    return _Step({"id": action.id, "type": action.type, "status": "stopped", "reason": action.reason}, stop=True)


def _excerpt(text: str, secrets: list[str] | None = None) -> str:
    text = mask(text, secrets or [])
    if len(text) > EXCERPT_CHARS:
        text = text[:EXCERPT_CHARS] + "…"
    return redact_text(text)


async def _clockify_api(
    runtime: Runtime, installation: Installation, run: ClaimedRun, action: ClockifyApiAction, ctx: Context
) -> _Step:
    operation = action.operation
    base = {"id": action.id, "type": action.type, "operation_id": operation.operation_id}
    if not operation_allowed(runtime.profile, operation):  # the tier may have changed since the flow was saved
        raise ActionFailed(f"{operation.operation_id} is not allowed on {runtime.profile.title}", retryable=False,
                           result=base)
    call = render_api_call(action, ctx, run.workspace_id)
    summary = {**base, "request": call.summary()}
    if call.entity_ids:
        await _remember(runtime, run, call.entity_ids)
    limit = free_plan_limit(runtime.settings.rate_limit) if installation.subscription_plan == "FREE" else None
    started = time.perf_counter()
    api_call = ApiCall(
        workspace_id=run.workspace_id, user_id=None, source="flow", operation_id=operation.operation_id,
        method=call.method, path=call.path[:2000],
    )
    try:
        api = installation_api(runtime, installation, rate_limit=limit)
        response = await api.request(call.method, call.path, api=call.api, params=call.query or None,  # type: ignore[arg-type]
                                     json=call.body)
    except (ClockifyApiError, RateLimited) as exc:
        await _log_call(runtime, api_call, None, started, exc.detail)
        raise ActionFailed(exc.detail, retryable=True, result=summary) from exc
    except ClockifyError as exc:  # no token, host not allowed, missing base URL
        await _log_call(runtime, api_call, None, started, exc.detail)
        raise ActionFailed(exc.detail, retryable=False, result=summary) from exc
    api_call.status = response.status_code
    api_call.duration_ms = round((time.perf_counter() - started) * 1000)
    summary["response"] = {"status": response.status_code, "body": _excerpt(response.text)}
    if not response.is_success:
        error = ClockifyApiError.from_response(response).detail
        api_call.error = error[:2000]
        await _log_call(runtime, api_call, response.status_code, started, error)
        raise ActionFailed(error, retryable=response.status_code in RETRY_STATUSES, result=summary)
    marks: list[str] = []
    try:
        data = decode_json(response)
    except ClockifyApiError:
        data = response.text
    if isinstance(data, dict) and action.writes and isinstance(data.get("id"), str) and data["id"] not in call.entity_ids:
        marks.append(data["id"])
    if action.save_as:
        ctx.vars[action.save_as] = data
    return _Step({**summary, "status": "succeeded"}, api_call=api_call, marks=marks)


async def _log_call(runtime: Runtime, call: ApiCall, status: int | None, started: float, error: str) -> None:
    call.status = status
    call.duration_ms = round((time.perf_counter() - started) * 1000)
    call.error = error[:2000]
    async with runtime.sessions.begin() as session:
        session.add(call)


async def _http_request(runtime: Runtime, engine: FlowEngine, action: HttpRequestAction, ctx: Context) -> _Step:
    config = runtime.settings.flows
    rendered = render_http(action, ctx, runtime.cipher.decrypt)
    summary: dict[str, Any] = {"id": action.id, "type": action.type, "request": rendered.summary()}
    try:
        outcome = await network.send(
            rendered.method, rendered.url, headers=rendered.headers, content=rendered.content,
            policy=engine.policy(runtime), resolver=engine.resolver, budget=action.timeout,
            max_bytes=config.max_response_bytes, follow_redirects=action.follow_redirects,
            max_redirects=config.max_redirects, user_agent=runtime.settings.http.user_agent,
            sensitive_headers=rendered.secret_headers,
        )
    except network.RequestRefused as exc:
        raise ActionFailed(exc.detail, retryable=False, result=summary) from exc
    except network.ResponseTooLarge as exc:
        raise ActionFailed(str(exc), retryable=False, result=summary) from exc
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise ActionFailed(f"no answer within {action.timeout}s", retryable=True, result=summary) from exc
    except httpx.HTTPError as exc:
        raise ActionFailed(f"{type(exc).__name__}: {exc}", retryable=True, result=summary) from exc
    text = outcome.body.decode("utf-8", "replace")
    summary["response"] = {
        "status": outcome.status_code, "body": _excerpt(text, rendered.secrets),
        "content_type": outcome.headers.get("content-type"),
    }
    if outcome.hops:
        summary["response"]["redirects"] = outcome.hops
    if not 200 <= outcome.status_code < 300:
        hint = " (set follow_redirects to follow it)" if outcome.status_code in network.REDIRECTS else ""
        raise ActionFailed(f"the server answered {outcome.status_code}{hint}",
                           retryable=outcome.status_code in RETRY_STATUSES, result=summary)
    if action.save_as:
        try:
            ctx.vars[action.save_as] = orjson.loads(outcome.body) if outcome.body else None
        except orjson.JSONDecodeError:
            ctx.vars[action.save_as] = text
    return _Step({**summary, "status": "succeeded"})


# Recording -----------------------------------------------------------------------------------

def _insert(session: AsyncSession) -> Any:
    return postgresql.insert if session.bind is not None and session.bind.dialect.name == "postgresql" else sqlite.insert


async def _upsert_marks(session: AsyncSession, runtime: Runtime, run: ClaimedRun, entity_ids: list[str]) -> None:
    expires = utcnow() + timedelta(seconds=runtime.settings.flows.loop_window_seconds)
    table = FlowLoopMark.__table__
    for entity in dict.fromkeys(entity_ids):
        stmt = _insert(session)(table).values(
            flow_id=run.flow_id, entity_id=entity[:200], workspace_id=run.workspace_id,
            depth=run.chain_depth + 1, expires_at=expires,
        )
        await session.execute(stmt.on_conflict_do_update(
            index_elements=["flow_id", "entity_id"],
            set_={"depth": stmt.excluded.depth, "expires_at": stmt.excluded.expires_at},
        ))


async def _remember(runtime: Runtime, run: ClaimedRun, entity_ids: list[str]) -> None:
    async with runtime.sessions.begin() as session:
        await _upsert_marks(session, runtime, run, entity_ids)


async def _owned(session: AsyncSession, runtime: Runtime, run: ClaimedRun, **values: Any) -> None:
    result = await session.execute(
        update(FlowRun)
        .where(FlowRun.id == run.id, FlowRun.locked_by == runtime.instance_id, FlowRun.status == RunStatus.RUNNING)
        .values(**values)
    )
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        raise LeaseLost


async def _checkpoint(
    runtime: Runtime, run: ClaimedRun, results: list[dict[str, Any]], state: dict[str, Any], step: _Step
) -> None:
    async with runtime.sessions.begin() as session:
        await _owned(
            session, runtime, run, actions=results, state=_jsonable(state),
            locked_until=utcnow() + timedelta(seconds=runtime.settings.flows.lease_seconds),
        )
        if step.api_call is not None:
            session.add(step.api_call)
        if step.marks:
            await _upsert_marks(session, runtime, run, step.marks)


def _jsonable(value: Any) -> Any:
    # Variables hold whatever a response contained; keep the state a plain JSON document.
    return orjson.loads(orjson.dumps(value, default=str))


async def _action_failed(
    runtime: Runtime,
    run: ClaimedRun,
    action: Action,
    index: int,
    state: dict[str, Any],
    results: list[dict[str, Any]],
    failure: ActionFailed,
) -> None:
    config = runtime.settings.flows
    attempts = int(state["attempts"].get(str(index), 0)) + 1
    state["attempts"][str(index)] = attempts
    record = {"id": action.id, "type": action.type, **failure.result, "status": "failed", "error": str(failure),
              "attempts": attempts}
    if failure.retryable and attempts < config.max_action_attempts:
        delay = backoff_seconds(attempts, base=config.retry_backoff_base, cap=config.retry_backoff_max)
        async with runtime.sessions.begin() as session:
            await _owned(
                session, runtime, run, status=RunStatus.QUEUED, state=_jsonable({**state, "last_failure": record}),
                actions=results, next_attempt_at=utcnow() + timedelta(seconds=delay), locked_by=None,
                locked_until=None, error=f"{action.id}: {failure} (attempt {attempts}, retrying)",
            )
        log.info("flows.action_retry", run_id=run.id, action=action.id, attempt=attempts, delay=round(delay, 2))
        return
    await _finish(runtime, run, RunStatus.FAILED, [*results, record], error=f"{action.id}: {failure}")


async def _finish(
    runtime: Runtime, run: ClaimedRun, status: RunStatus, results: list[dict[str, Any]], *, error: str | None = None
) -> None:
    assert status in FINISHED
    now = utcnow()
    async with runtime.sessions.begin() as session:
        await _owned(
            session, runtime, run, status=status, actions=results, error=error, finished_at=now, locked_by=None,
            locked_until=None, next_attempt_at=None,
            duration_ms=max(0, round((now - run.started_at).total_seconds() * 1000)),
        )
        if status == RunStatus.FAILED:
            await record_failure(session, run.flow_id, error or "failed", runtime.settings.flows.failure_threshold)
        elif status in (RunStatus.SUCCEEDED, RunStatus.STOPPED):
            await record_success(session, run.flow_id)
    runtime.metrics.flows_executed.labels(status.lower()).inc()
    log.info("flows.run_finished", run_id=run.id, flow_id=run.flow_id, status=status, error=error)


# The loop and housekeeping -------------------------------------------------------------------

async def housekeeping(runtime: Runtime, *, now: datetime | None = None) -> int:
    """Remove expired loop marks; returns how many. (Old runs go with RETENTION__FLOW_RUN_DAYS.)"""
    async with runtime.sessions.begin() as session:
        result = await session.execute(delete(FlowLoopMark).where(FlowLoopMark.expires_at <= (now or utcnow())))
    return int(getattr(result, "rowcount", 0) or 0)


async def flow_loop(runtime: Runtime, stop: asyncio.Event) -> None:
    config = runtime.settings.flows
    engine = flow_engine(runtime)
    next_flush = next_housekeeping = 0.0
    while not stop.is_set():
        claimed = 0
        try:
            claimed = await run_due(runtime)
            clock = time.monotonic()
            if clock >= next_flush:
                await engine.flush_counters(runtime)
                next_flush = clock + config.counter_flush_seconds
            if clock >= next_housekeeping:
                await housekeeping(runtime)
                next_housekeeping = clock + config.housekeeping_seconds
        except Exception:  # the database may be briefly away; keep the loop alive
            log.warning("flows.loop_error", exc_info=True)
        if not claimed:
            await runtime.idle(engine.wakeup, config.poll_interval)
