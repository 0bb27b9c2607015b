"""The flow executor: claim queued runs, perform their actions, record every step.

Runs are a durable queue in ``flow_runs`` (claimed like the inbox: a lease per run,
``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so actions survive restarts and happen at
least once: after each action the run stores its results and where it resumes
(``state.next`` and the variables), so a run taken over after a crash repeats at most
the action that was in flight. A failing action is retried with backoff by putting
the run back in the queue (``max_action_attempts``); then the run fails, and
``failure_threshold`` failed runs in a row disable the flow with the reason.

No run stays RUNNING: any exception of an action fails the action, one outside the
actions fails the run, and a takeover counts as an attempt of the action in flight, so a
run that keeps killing its worker ends FAILED at the claim. What a run stores (results,
state, error, ``api_calls`` rows) is masked with the flow's secrets.

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
from typing import Any

import httpx
import orjson
import structlog
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clockify_core.client import ClockifyApiError, decode_json
from clockify_core.db.base import utcnow
from clockify_core.db.dialect import insert_for
from clockify_core.db.failures import describe_failure
from clockify_core.db.queue import retry_delay
from clockify_core.errors import ClockifyError, RateLimited
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
from clockify_core.flows.claims import RUNS, ClaimedRun, claim
from clockify_core.flows.conditions import ConditionError
from clockify_core.flows.engine import (
    FlowEngine,
    budgeted,
    event_context,
    flow_engine,
    record_failure,
    record_success,
)
from clockify_core.flows.masking import flow_secrets, mask_call, masked, stored_state
from clockify_core.flows.models import FINISHED, Flow, FlowLoopMark, RunStatus
from clockify_core.flows.paths import Context
from clockify_core.flows.templates import TemplateError
from clockify_core.installations.models import Installation
from clockify_core.installations.repository import installation_api
from clockify_core.installations.settings import flag, values
from clockify_core.observability.isolation import installation_failed
from clockify_core.observability.logging import redact_text
from clockify_core.openapi.models import ApiCall
from clockify_core.runtime import Runtime

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
class _Step:
    result: dict[str, Any]
    stop: bool = False
    api_call: ApiCall | None = None
    marks: list[str] = field(default_factory=list)


# Executing -----------------------------------------------------------------------------------

async def run_due(runtime: Runtime, *, limit: int | None = None) -> int:
    """Claim one batch of due runs and execute them; returns how many were claimed."""
    config = runtime.settings.flows
    engine = flow_engine(runtime)
    async with runtime.sessions.begin() as session:
        runs = await claim(
            session, worker_id=runtime.instance_id, limit=limit or config.batch_size, lease_seconds=config.lease_seconds,
            max_attempts=config.max_action_attempts, failure_threshold=config.failure_threshold,
        )
    for run in runs:
        if run.gave_up is not None:
            runtime.metrics.flows_executed.labels(RunStatus.FAILED.lower()).inc()
            log.warning("flows.run_abandoned", run_id=run.id, flow_id=run.flow_id, error=run.gave_up)
            continue
        if runtime.stop.is_set():
            break  # the rest come back when their leases run out
        try:
            await execute(runtime, engine, run)
        except LeaseLost:
            log.warning("flows.lease_lost", run_id=run.id)
        except Exception as exc:
            # Outside any action (the database, a bug): end this run, and go on with the batch.
            installation_failed(runtime.metrics, "flow_executor", run.workspace_id, run_id=run.id, flow_id=run.flow_id)
            # Without the SQL and parameters a database error's text carries (db/failures.py).
            await _abandon(runtime, run, f"the run stopped on an unexpected error: {describe_failure(exc)}")
    return len(runs)


async def execute(runtime: Runtime, engine: FlowEngine, run: ClaimedRun) -> None:
    async with runtime.sessions() as session:
        flow = await session.get(Flow, run.flow_id)
        installation = await session.get(Installation, run.workspace_id)
    if flow is None or installation is None:
        return  # deleted with its flow (the run row went with it) or the workspace was purged
    settings = values(installation.settings)
    if not flow.enabled or not flag(installation.settings, "flows_enabled"):
        reason = "the flow was disabled" if not flow.enabled else "flows are switched off for the workspace"
        await _finish(runtime, run, RunStatus.SKIPPED, run.actions, error=f"not run: {reason}")
        return
    try:
        compiled = (await engine.compile(runtime, flow)).compiled
    except ClockifyError as exc:
        await _finish(runtime, run, RunStatus.FAILED, run.actions, error=f"the definition is not valid: {exc.detail}")
        return
    run.secrets = flow_secrets(compiled.actions, runtime.cipher.decrypt)
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
        # Each action's `when` and templates: off the event loop, with a budget of their own.
        action_ctx = budgeted(ctx, runtime.settings.flows)
        try:
            if not await engine.offload(action.when.evaluate, action_ctx):
                results.append({"id": action.id, "type": action.type, "status": "skipped"})
                state["next"] = index + 1
                continue
            step = await _perform(runtime, engine, installation, run, action, action_ctx)
        except Exception as exc:
            runtime.metrics.flow_action_duration.labels(action.type).observe(time.perf_counter() - started)
            await _action_failed(runtime, run, action, index, state, results, _as_failure(run, action, exc))
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


def _as_failure(run: ClaimedRun, action: Action, exc: Exception) -> ActionFailed:
    """Every exception of an action fails the action: none may leave the run RUNNING."""
    if isinstance(exc, ActionFailed):
        return exc
    if isinstance(exc, ConditionError | TemplateError):
        return ActionFailed(str(exc), retryable=False)
    if isinstance(exc, ClockifyError):  # e.g. a stored secret the configured ENCRYPTION_KEY cannot open
        return ActionFailed(exc.detail, retryable=False)
    log.exception("flows.action_crashed", run_id=run.id, flow_id=run.flow_id, action=action.id)
    return ActionFailed(f"unexpected error: {describe_failure(exc)}", retryable=False)


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


async def _perform(
    runtime: Runtime, engine: FlowEngine, installation: Installation, run: ClaimedRun, action: Action, ctx: Context
) -> _Step:
    if isinstance(action, ClockifyApiAction):
        return await _clockify_api(runtime, engine, installation, run, action, ctx)
    if isinstance(action, HttpRequestAction):
        return await _http_request(runtime, engine, action, ctx)
    if isinstance(action, SetVariableAction):
        value = await engine.offload(action.value.render, ctx)
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
    runtime: Runtime, engine: FlowEngine, installation: Installation, run: ClaimedRun, action: ClockifyApiAction,
    ctx: Context,
) -> _Step:
    operation = action.operation
    base = {"id": action.id, "type": action.type, "operation_id": operation.operation_id}
    if not operation_allowed(runtime.profile, operation):  # the tier may have changed since the flow was saved
        raise ActionFailed(f"{operation.operation_id} is not allowed on {runtime.profile.title}", retryable=False,
                           result=base)
    call = await engine.offload(render_api_call, action, ctx, run.workspace_id)
    summary = {**base, "request": call.summary()}
    if call.entity_ids:
        await _remember(runtime, run, call.entity_ids)
    started = time.perf_counter()
    api_call = ApiCall(
        workspace_id=run.workspace_id, user_id=None, source="flow", operation_id=operation.operation_id,
        method=call.method, path=call.path[:2000],
    )
    try:
        api = installation_api(runtime, installation)
        response = await api.request(call.method, call.path, api=call.api, params=call.query or None,  # type: ignore[arg-type]
                                     json=call.body)
    except (ClockifyApiError, RateLimited) as exc:
        status = exc.status_code if isinstance(exc, ClockifyApiError) else exc.status
        await _log_call(runtime.sessions, run, api_call, status, started, exc.detail)
        raise ActionFailed(exc.detail, retryable=True, result=summary) from exc
    except ClockifyError as exc:  # no token, host not allowed, missing base URL
        await _log_call(runtime.sessions, run, api_call, None, started, exc.detail)
        raise ActionFailed(exc.detail, retryable=False, result=summary) from exc
    api_call.status = response.status_code
    api_call.duration_ms = round((time.perf_counter() - started) * 1000)
    summary["response"] = {"status": response.status_code, "body": _excerpt(response.text)}
    if not response.is_success:
        error = ClockifyApiError.from_response(response).detail
        api_call.error = error[:2000]
        await _log_call(runtime.sessions, run, api_call, response.status_code, started, error)
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


async def _log_call(
    sessions: async_sessionmaker[AsyncSession], run: ClaimedRun, call: ApiCall, status: int | None, started: float,
    error: str,
) -> None:
    call.status = status
    call.duration_ms = round((time.perf_counter() - started) * 1000)
    call.error = error[:2000]
    async with sessions.begin() as session:
        session.add(mask_call(call, run.secrets))


async def _http_request(runtime: Runtime, engine: FlowEngine, action: HttpRequestAction, ctx: Context) -> _Step:
    config = runtime.settings.flows
    rendered = await engine.offload(render_http, action, ctx, runtime.cipher.decrypt)
    summary: dict[str, Any] = {"id": action.id, "type": action.type, "request": rendered.summary()}
    try:
        outcome = await network.send(
            rendered.method, rendered.url, headers=rendered.headers, content=rendered.content,
            policy=engine.policy(config.http_allowlist), resolver=engine.resolver, budget=action.timeout,
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

async def _upsert_marks(session: AsyncSession, window_seconds: float, run: ClaimedRun, entity_ids: list[str]) -> None:
    expires = utcnow() + timedelta(seconds=window_seconds)
    table = FlowLoopMark.__table__
    for entity in dict.fromkeys(entity_ids):
        stmt = insert_for(session)(table).values(
            flow_id=run.flow_id, entity_id=entity[:200], workspace_id=run.workspace_id,
            depth=run.chain_depth + 1, expires_at=expires,
        )
        await session.execute(stmt.on_conflict_do_update(
            index_elements=["flow_id", "entity_id"],
            set_={"depth": stmt.excluded.depth, "expires_at": stmt.excluded.expires_at},
        ))


async def _remember(runtime: Runtime, run: ClaimedRun, entity_ids: list[str]) -> None:
    async with runtime.sessions.begin() as session:
        await _upsert_marks(session, runtime.settings.flows.loop_window_seconds, run, entity_ids)


async def _owned(session: AsyncSession, worker_id: str, run: ClaimedRun, **values: Any) -> None:
    result = await session.execute(update(RUNS.table).where(*RUNS.held(run.id, worker_id)).values(**values))
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        raise LeaseLost


async def _checkpoint(
    runtime: Runtime, run: ClaimedRun, results: list[dict[str, Any]], state: dict[str, Any], step: _Step
) -> None:
    async with runtime.sessions.begin() as session:
        await _owned(
            session, runtime.instance_id, run, actions=masked(results, run.secrets),
            state=stored_state(state, run.secrets),
            locked_until=utcnow() + timedelta(seconds=runtime.settings.flows.lease_seconds),
        )
        if step.api_call is not None:
            session.add(mask_call(step.api_call, run.secrets))
        if step.marks:
            await _upsert_marks(session, runtime.settings.flows.loop_window_seconds, run, step.marks)


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
    record = masked(
        {"id": action.id, "type": action.type, **failure.result, "status": "failed", "error": str(failure),
         "attempts": attempts},
        run.secrets,
    )
    delay = retry_delay(
        attempts, max_attempts=config.max_action_attempts, base=config.retry_backoff_base, cap=config.retry_backoff_max
    )
    if failure.retryable and delay is not None:
        async with runtime.sessions.begin() as session:
            await _owned(
                session, runtime.instance_id, run, **RUNS.retry_at(utcnow() + timedelta(seconds=delay)),
                state=stored_state({**state, "last_failure": record}, run.secrets), actions=masked(results, run.secrets),
                error=mask(f"{action.id}: {failure} (attempt {attempts}, retrying)", run.secrets),
            )
        log.info("flows.action_retry", run_id=run.id, action=action.id, attempt=attempts, delay=round(delay, 2))
        return
    await _finish(runtime, run, RunStatus.FAILED, [*results, record], error=f"{action.id}: {failure}")


async def _finish(
    runtime: Runtime, run: ClaimedRun, status: RunStatus, results: list[dict[str, Any]], *, error: str | None = None
) -> None:
    assert status in FINISHED
    now = utcnow()
    error = mask(error, run.secrets) if error is not None else None
    async with runtime.sessions.begin() as session:
        await _owned(
            session, runtime.instance_id, run, status=status, actions=masked(results, run.secrets), error=error,
            finished_at=now, locked_by=None, locked_until=None, next_attempt_at=None,
            duration_ms=max(0, round((now - run.started_at).total_seconds() * 1000)),
        )
        if status == RunStatus.FAILED:
            await record_failure(session, run.flow_id, error or "failed", runtime.settings.flows.failure_threshold)
        elif status in (RunStatus.SUCCEEDED, RunStatus.STOPPED):
            await record_success(session, run.flow_id)
    runtime.metrics.flows_executed.labels(status.lower()).inc()
    log.info("flows.run_finished", run_id=run.id, flow_id=run.flow_id, status=status, error=error)


async def _abandon(runtime: Runtime, run: ClaimedRun, error: str) -> None:
    """End a run that broke outside its actions as FAILED, keeping the steps it recorded."""
    error = mask(error, run.secrets)
    now = utcnow()
    try:
        async with runtime.sessions.begin() as session:
            await _owned(
                session, runtime.instance_id, run, status=RunStatus.FAILED, error=error, finished_at=now,
                locked_by=None, locked_until=None, next_attempt_at=None,
                duration_ms=max(0, round((now - run.started_at).total_seconds() * 1000)),
            )
            await record_failure(session, run.flow_id, error, runtime.settings.flows.failure_threshold)
    except Exception:  # LeaseLost, or the database is away: the lease runs out and claim counts it
        log.warning("flows.abandon_failed", run_id=run.id, flow_id=run.flow_id, exc_info=True)
        return
    runtime.metrics.flows_executed.labels(RunStatus.FAILED.lower()).inc()


# The loop and housekeeping -------------------------------------------------------------------

async def housekeeping(sessions: async_sessionmaker[AsyncSession], *, now: datetime | None = None) -> int:
    """Remove expired loop marks; returns how many. (Old runs go with RETENTION__FLOW_RUN_DAYS.)"""
    async with sessions.begin() as session:
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
                await engine.flush_counters(runtime.sessions)
                next_flush = clock + config.counter_flush_seconds
            if clock >= next_housekeeping:
                await housekeeping(runtime.sessions)
                next_housekeeping = clock + config.housekeeping_seconds
        except Exception:  # the database may be briefly away; keep the loop alive
            log.warning("flows.loop_error", exc_info=True)
        if not claimed:
            await runtime.idle(engine.wakeup, config.poll_interval)
