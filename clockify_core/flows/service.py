"""The rules behind ``/api/flows``: save (validated, secrets sealed), read (secrets masked), dry-run.

Every function takes the caller's workspace and only ever touches rows of it: a flow
of workspace A is invisible to, and cannot be fired by, workspace B.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import orjson
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core.config import FlowsConfig
from clockify_core.db.base import utcnow
from clockify_core.errors import NotFound, ValidationFailed
from clockify_core.flows.actions import (
    MASK,
    ClockifyApiAction,
    HttpRequestAction,
    SetVariableAction,
    StopAction,
    render_api_call,
    render_http,
)
from clockify_core.flows.conditions import ConditionError
from clockify_core.flows.definition import CompiledFlow, compile_definition
from clockify_core.flows.engine import (
    budgeted,
    event_context,
    flow_engine,
)
from clockify_core.flows.models import Flow, FlowLoopMark, FlowRun
from clockify_core.flows.paths import Context
from clockify_core.flows.schemas import (
    DryRunAction,
    DryRunRequest,
    DryRunResult,
    FlowCreate,
    FlowDefinition,
    FlowRead,
    FlowRunRead,
    FlowUpdate,
)
from clockify_core.flows.secrets import SECRET_KEY, is_stored_secret, stored_secret
from clockify_core.flows.templates import TemplateError
from clockify_core.installations.limits import reserve_slot
from clockify_core.installations.models import Installation
from clockify_core.installations.settings import flag, values
from clockify_core.runtime import Runtime
from clockify_core.security.crypto import TokenCipher
from clockify_core.webhooks.models import CustomWebhookSource, InboxEvent


async def _custom_sources(session: AsyncSession, workspace_id: str) -> set[str]:
    rows = await session.execute(
        select(CustomWebhookSource.id).where(CustomWebhookSource.workspace_id == workspace_id)
    )
    return set(rows.scalars())


def refuse_sealed(data: FlowDefinition) -> None:
    """Only the server writes encrypted secrets; a client sends {"secret": value}."""
    for index, action in enumerate(data.actions):
        headers = action.get("headers") if isinstance(action, dict) else None
        for name, value in (headers or {}).items() if isinstance(headers, dict) else ():
            if isinstance(value, dict) and SECRET_KEY in value:
                location = f"body.actions.{index}.headers.{name}"
                raise ValidationFailed(
                    f"{location}: send secrets as {{\"secret\": value}}",
                    errors=[{"location": location, "message": 'send secrets as {"secret": value}', "kind": "invalid"}],
                )


async def validate(
    runtime: Runtime, session: AsyncSession, workspace_id: str, data: FlowDefinition
) -> CompiledFlow:
    """Compile a definition as received; raises 422 / 403 with the location of each problem.

    Off the event loop (the engine's thread pool): a definition may hold thousands of paths."""
    engine, config = flow_engine(runtime), runtime.settings.flows
    return await engine.offload(
        compile_definition, data.model_dump(), profile=runtime.profile, config=config,
        policy=engine.policy(config.http_allowlist), custom_sources=await _custom_sources(session, workspace_id),
    )


# Secrets --------------------------------------------------------------------------------------

def _previous_secrets(stored: list[dict[str, Any]] | None) -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    for index, action in enumerate(stored or []):
        action_id = str(action.get("id", f"step{index + 1}"))
        for name, value in (action.get("headers") or {}).items():
            if is_stored_secret(value):
                found[(action_id, name.lower())] = value[SECRET_KEY]
    return found


def seal_actions(
    cipher: TokenCipher, actions: list[Any], previous: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """The stored form: each ``{"secret": value}`` encrypted, ``{"secret": "********"}``
    replaced by the secret stored before for the same action id and header, provided the
    action still sends to the same URL: a kept secret never goes anywhere new, so whoever
    changes the URL must enter the secret again (docs/flows.md, "Secrets")."""
    kept = _previous_secrets(previous)
    sent_to = {str(a.get("id", f"step{i + 1}")): a.get("url") for i, a in enumerate(previous or [])}
    sealed: list[dict[str, Any]] = []
    for index, raw in enumerate(actions):
        action = copy.deepcopy(raw)
        action.setdefault("id", f"step{index + 1}")
        headers = action.get("headers")
        if isinstance(headers, dict):
            for name, value in headers.items():
                if isinstance(value, dict) and "secret" in value:
                    if value["secret"] == MASK:
                        stored = kept.get((action["id"], name.lower()))
                        if stored is None:
                            raise ValidationFailed(
                                f"actions.{index}.headers.{name}: no stored secret to keep; send the value",
                                errors=[{"location": f"body.actions.{index}.headers.{name}",
                                         "message": "no stored secret to keep; send the value", "kind": "missing"}],
                            )
                        if action.get("url") != sent_to.get(action["id"]):
                            reason = "the action's URL changed: enter the secret again to send it to the new URL"
                            raise ValidationFailed(
                                f"actions.{index}.headers.{name}: {reason}",
                                errors=[{"location": f"body.actions.{index}.headers.{name}", "message": reason,
                                         "kind": "missing"}],
                            )
                        headers[name] = stored_secret(stored)
                    else:
                        headers[name] = stored_secret(cipher.encrypt(value["secret"]))
        sealed.append(action)
    return sealed


def _masked_actions(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    shown = copy.deepcopy(actions)
    for action in shown:
        for name, value in (action.get("headers") or {}).items():
            if is_stored_secret(value):
                action["headers"][name] = {"secret": MASK}
    return shown


def _unmasked_for_compile(data: FlowDefinition, previous: list[dict[str, Any]] | None) -> FlowDefinition:
    """Masked secrets sent back unchanged compile as the stored secret they stand for."""
    kept = _previous_secrets(previous)
    actions = copy.deepcopy(data.actions)
    for index, action in enumerate(actions):
        if not isinstance(action, dict):
            continue
        action_id = str(action.get("id", f"step{index + 1}"))
        for name, value in (action.get("headers") or {}).items() if isinstance(action.get("headers"), dict) else ():
            if isinstance(value, dict) and value.get("secret") == MASK and (action_id, name.lower()) in kept:
                action["headers"][name] = stored_secret(kept[(action_id, name.lower())])
    return data.model_copy(update={"actions": actions})


# CRUD ----------------------------------------------------------------------------------------

def to_read(flow: Flow) -> FlowRead:
    return FlowRead(
        id=flow.id, workspace_id=flow.workspace_id, name=flow.name, enabled=flow.enabled, trigger=flow.trigger,
        conditions=flow.conditions, actions=_masked_actions(flow.actions), max_runs_per_minute=flow.max_runs_per_minute,
        record_unmatched=flow.record_unmatched, version=flow.version, consecutive_failures=flow.consecutive_failures,
        disabled_reason=flow.disabled_reason, evaluated_count=flow.evaluated_count, matched_count=flow.matched_count,
        last_matched_at=flow.last_matched_at, created_by=flow.created_by, created_at=flow.created_at,
        updated_at=flow.updated_at,
    )


async def get_flow(session: AsyncSession, workspace_id: str, flow_id: str) -> Flow:
    flow = await session.get(Flow, flow_id)
    if flow is None or flow.workspace_id != workspace_id:
        raise NotFound(f"No flow {flow_id} in this workspace")
    return flow


async def list_flows(session: AsyncSession, workspace_id: str) -> list[Flow]:
    rows = await session.execute(select(Flow).where(Flow.workspace_id == workspace_id).order_by(Flow.created_at, Flow.id))
    return list(rows.scalars())


async def create_flow(
    runtime: Runtime, session: AsyncSession, workspace_id: str, user_id: str | None, data: FlowCreate
) -> Flow:
    # Counted under a per-workspace lock held until commit: concurrent creates cannot overshoot.
    await reserve_slot(session, Flow, workspace_id, runtime.settings.flows.max_flows_per_workspace,
                       "flows (FLOWS__MAX_FLOWS_PER_WORKSPACE)")
    refuse_sealed(data)
    await validate(runtime, session, workspace_id, data)
    now = utcnow()
    flow = Flow(
        id=str(uuid.uuid4()), workspace_id=workspace_id, name=data.name, enabled=data.enabled, trigger=data.trigger,
        conditions=data.conditions, actions=seal_actions(runtime.cipher, data.actions, None),
        max_runs_per_minute=data.max_runs_per_minute, record_unmatched=data.record_unmatched, version=1,
        consecutive_failures=0, evaluated_count=0, matched_count=0, created_by=user_id, created_at=now, updated_at=now,
    )
    session.add(flow)
    await session.flush()
    return flow


async def update_flow(
    runtime: Runtime, session: AsyncSession, workspace_id: str, flow_id: str, data: FlowUpdate
) -> Flow:
    flow = await get_flow(session, workspace_id, flow_id)
    refuse_sealed(data)
    await validate(runtime, session, workspace_id, _unmasked_for_compile(data, flow.actions))
    flow.actions = seal_actions(runtime.cipher, data.actions, flow.actions)
    flow.name, flow.trigger, flow.conditions = data.name, data.trigger, data.conditions
    flow.max_runs_per_minute, flow.record_unmatched = data.max_runs_per_minute, data.record_unmatched
    if data.enabled is not None:
        _set_enabled(flow, data.enabled)
    flow.version += 1
    flow.updated_at = utcnow()
    # A new definition starts a new loop-guard history.
    await session.execute(delete(FlowLoopMark).where(FlowLoopMark.flow_id == flow.id))
    await session.flush()
    return flow


def _set_enabled(flow: Flow, enabled: bool) -> None:
    if enabled and not flow.enabled:
        flow.consecutive_failures = 0
        flow.disabled_reason = None
    flow.enabled = enabled


async def set_enabled(session: AsyncSession, workspace_id: str, flow_id: str, enabled: bool) -> Flow:
    flow = await get_flow(session, workspace_id, flow_id)
    _set_enabled(flow, enabled)
    if not enabled:
        flow.disabled_reason = "Disabled by an admin"
    flow.updated_at = utcnow()
    await session.flush()
    return flow


async def delete_flow(session: AsyncSession, workspace_id: str, flow_id: str) -> None:
    flow = await get_flow(session, workspace_id, flow_id)
    # Children first: SQLite enforces ON DELETE CASCADE only with foreign keys switched on.
    await session.execute(delete(FlowRun).where(FlowRun.flow_id == flow.id))
    await session.execute(delete(FlowLoopMark).where(FlowLoopMark.flow_id == flow.id))
    await session.delete(flow)


def run_to_read(run: FlowRun, *, with_event: bool) -> FlowRunRead:
    return FlowRunRead(
        id=run.id, flow_id=run.flow_id, inbox_event_id=run.inbox_event_id, event_type=run.event_type,
        entity_id=run.entity_id, matched=run.matched, status=run.status, chain_depth=run.chain_depth,
        attempts=run.attempts, actions=run.actions or [], duration_ms=run.duration_ms, error=run.error,
        created_at=run.created_at, started_at=run.started_at, finished_at=run.finished_at,
        event=run.trigger if with_event else None,
    )


async def list_runs(
    session: AsyncSession, workspace_id: str, flow_id: str, *, limit: int, before_id: int | None,
    status: str | None, matched: bool | None,
) -> list[FlowRun]:
    await get_flow(session, workspace_id, flow_id)
    stmt = select(FlowRun).where(FlowRun.flow_id == flow_id, FlowRun.workspace_id == workspace_id)
    if before_id is not None:
        stmt = stmt.where(FlowRun.id < before_id)
    if status is not None:
        stmt = stmt.where(FlowRun.status == status.upper())
    if matched is not None:
        stmt = stmt.where(FlowRun.matched.is_(matched))
    return list((await session.execute(stmt.order_by(FlowRun.id.desc()).limit(limit))).scalars())


async def get_run(session: AsyncSession, workspace_id: str, flow_id: str, run_id: int) -> FlowRun:
    run = await session.get(FlowRun, run_id)
    if run is None or run.flow_id != flow_id or run.workspace_id != workspace_id:
        raise NotFound(f"No run {run_id} of flow {flow_id} in this workspace")
    return run


# Dry-run -------------------------------------------------------------------------------------

async def dry_run(
    runtime: Runtime, session: AsyncSession, workspace_id: str, request: DryRunRequest, flow: Flow | None
) -> DryRunResult:
    """What would happen for one event: no HTTP call, no Clockify write, no row written.

    The conditions and actions are evaluated off the event loop with the run-time budgets;
    past one, the result names it (``blocked_by`` for the conditions, an action's
    ``error``), as the run would fail."""
    if flow is None:
        assert request.flow is not None
        refuse_sealed(request.flow)
        compiled = await validate(runtime, session, workspace_id, request.flow)
        enabled = request.flow.enabled
    else:
        compiled = (await flow_engine(runtime).compile(runtime, flow)).compiled
        enabled = flow.enabled
    if request.inbox_event_id is not None:
        event = await session.get(InboxEvent, request.inbox_event_id)
        if event is None or event.workspace_id != workspace_id:
            raise NotFound(f"No event {request.inbox_event_id} in this workspace")
        event_type, source, source_ref, event_id = event.event_type, event.source, event.source_ref, event.id
        body, received_at = orjson.loads(event.body), event.received_at
    else:
        assert request.event is not None
        sample = request.event
        event_type, source, source_ref, event_id, body, received_at = (
            sample.type, sample.source, sample.source_ref, None, sample.body, utcnow()
        )
    installation = await session.get(Installation, workspace_id)
    stored = installation.settings if installation else None
    settings = values(stored)
    ctx = event_context(
        body=body, event_type=event_type, source=source, source_ref=source_ref, event_id=event_id,
        received_at=received_at, workspace_id=workspace_id, settings=settings,
    )
    result = DryRunResult(trigger_matched=compiled.trigger.matches(event_type, source, source_ref), matched=False,
                          would_run=False)
    if not result.trigger_matched:
        result.blocked_by = "the trigger does not name this event"
        return result
    return await flow_engine(runtime).offload(
        _dry_evaluate, compiled, ctx, result, enabled=enabled, switched_on=flag(stored, "flows_enabled"),
        workspace_id=workspace_id, bases=_base_urls(installation), config=runtime.settings.flows,
    )


def _dry_evaluate(
    compiled: CompiledFlow, ctx: Context, result: DryRunResult, *, enabled: bool, switched_on: bool,
    workspace_id: str, bases: dict[str, str | None], config: FlowsConfig,
) -> DryRunResult:
    """The CPU part of a dry-run (in the engine's thread pool): conditions, then each action, each budgeted."""
    try:
        # Every node is explained (no short-circuit), so this may spend more than a run would.
        result.conditions = compiled.condition.explain(budgeted(ctx, config))
    except ConditionError as exc:
        result.blocked_by = f"condition error: {exc}"
        return result
    result.matched = bool(result.conditions["result"])
    if not result.matched:
        result.blocked_by = "the conditions are false"
        return result
    if not enabled:
        result.blocked_by = "the flow is disabled"
    elif not switched_on:
        result.blocked_by = "flows are switched off for this workspace (flows_enabled)"
    result.would_run = result.blocked_by is None
    for action in compiled.actions:
        step = _dry_action(action, budgeted(ctx, config), workspace_id, bases)
        result.actions.append(step)
        if step.outcome in ("stop", "error"):
            break
    result.variables = dict(ctx.vars)
    return result


def _dry_action(action: Any, ctx: Any, workspace_id: str, bases: dict[str, str | None]) -> DryRunAction:
    step = DryRunAction(id=action.id, type=action.type, outcome="would_run")
    try:
        when = action.when.explain(ctx)
        if not when.get("always"):
            step.when = when
        if not when["result"]:
            step.outcome = "skipped"
            return step
        if isinstance(action, ClockifyApiAction):
            call = render_api_call(action, ctx, workspace_id)
            request = call.summary()
            base = bases.get(call.api)
            if base:
                request["url"] = base + call.path
            request["operation_id"] = action.operation.operation_id
            step.request = request
            if action.save_as:
                ctx.vars[action.save_as] = None
                step.note = f"$vars.{action.save_as} holds the response at run time; null here"
        elif isinstance(action, HttpRequestAction):
            step.request = render_http(action, ctx, None).summary()
            step.note = "The host's addresses are resolved and checked when the flow runs"
            if action.save_as:
                ctx.vars[action.save_as] = None
        elif isinstance(action, SetVariableAction):
            value = action.value.render(ctx)
            ctx.vars[action.name] = value
            step.variable = {action.name: value}
        elif isinstance(action, StopAction):
            step.outcome = "stop"
            step.note = action.reason
    except (TemplateError, ConditionError) as exc:
        step.outcome, step.error = "error", str(exc)
    return step


def _base_urls(installation: Installation | None) -> dict[str, str | None]:
    """Base URL per API, read here on the loop (the evaluation runs in a thread, away from the session)."""
    if installation is None:
        return {}
    bases = {"api": installation.backend_url or installation.api_url, "reports": installation.reports_url,
             "pto": installation.pto_url}
    return {api: base.rstrip("/") if base else None for api, base in bases.items()}
