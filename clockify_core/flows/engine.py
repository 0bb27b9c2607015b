"""Matching: the inbox handler that decides, per event, which flows run.

:class:`FlowEngine` is registered as an inbox ``EventHandler``. Its ``apply`` runs
inside the transaction that marks the event DONE, after the mirror applied it, so a
match is recorded exactly once per event and never inline with the webhook response.
For each enabled flow of the event's workspace whose trigger names the event it
evaluates the compiled condition and, on a match, inserts a QUEUED ``flow_runs`` row
for the executor (:mod:`clockify_core.flows.executor`), unless

* the flow already had ``max_runs_per_minute`` admitted runs in the last minute
  (recorded as RATE_LIMITED), or
* the event is about an entity the same flow wrote within ``loop_window_seconds``, for
  the ``loop_max_depth``-th time in a row (recorded as LOOP_BLOCKED).

What a non-match costs: nothing in the database. Matches are rows; non-matches are
counted in memory and added to ``flows.evaluated_count`` every few seconds, and a
flow with ``record_unmatched`` (a debugging switch) gets a NOT_MATCHED row per event.

Compiled flows are cached per process by ``(id, version)``; one small query per event
(ids and versions of the workspace's enabled flows) tells which entries are stale.

Conditions never hold the event loop: an event's candidates are first tried on the loop
within a small slice (``INLINE_STEPS`` steps, ``INLINE_SECONDS``; the time is checked before
each regex search, so one search of up to ``FLOWS__REGEX_TIMEOUT`` may overrun it), which
decides ordinary events without a thread hop; if the slice runs out they are evaluated again in
a small thread pool of the engine (:meth:`FlowEngine.offload`), each flow with its own
:class:`~clockify_core.flows.paths.Budget` (``FLOWS__EVALUATION_BUDGET`` steps,
``FLOWS__EVALUATION_TIMEOUT`` seconds), so a costly selector neither stalls the process
nor runs unbounded: past its budget that flow's run is a ``CONDITION_ERROR`` (a failure
towards auto-disable) and the other flows and the mirror go on. Conditions have no side
effects, so evaluating one again is harmless.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import structlog
from sqlalchemy import Integer, String, bindparam, func, literal, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clockify_core.catalog import EVENTS
from clockify_core.config import FlowsConfig
from clockify_core.db.after_commit import after_commit
from clockify_core.db.base import JsonType, UtcDateTime, utcnow
from clockify_core.errors import ClockifyError
from clockify_core.flows.conditions import ConditionError
from clockify_core.flows.definition import CompiledFlow, compile_stored
from clockify_core.flows.models import ADMITTED, Flow, FlowLoopMark, FlowRun, RunStatus
from clockify_core.flows.network import NetworkPolicy, Resolver, system_resolver
from clockify_core.flows.paths import Budget, BudgetExceeded, Context
from clockify_core.installations.models import Installation, InstallationStatus
from clockify_core.installations.settings import flag, values
from clockify_core.payloads import entity_id
from clockify_core.runtime import Runtime
from clockify_core.webhooks.inbox import ClaimedEvent
from clockify_core.webhooks.models import EventSource

log = structlog.get_logger(__name__)
CACHE_LIMIT = 20_000
EVALUATION_THREADS = 2  # per process: evaluations are budgeted, so two threads always move on
INLINE_STEPS = 5_000  # what an event's conditions may spend on the loop before going to the pool
INLINE_SECONDS = 0.005
P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CachedFlow:
    id: str
    version: int
    compiled: CompiledFlow
    max_runs_per_minute: int
    record_unmatched: bool


# Built once: constructing these SQL expressions costs more than evaluating a flow.
_WORKSPACE = bindparam("workspace_id", type_=String())
_CURRENT = union_all(
    select(
        literal("i").label("kind"), literal(None, String).label("id"), literal(None, Integer).label("version"),
        Installation.status.label("status"), Installation.settings.label("settings"),
    ).where(Installation.workspace_id == _WORKSPACE),
    select(
        literal("f").label("kind"), Flow.id, Flow.version, literal(None, String).label("status"),
        literal(None, JsonType).label("settings"),
    ).where(Flow.workspace_id == _WORKSPACE, Flow.enabled.is_(True)),
)
_IDS = bindparam("ids", expanding=True, type_=String())
_ENTITY = bindparam("entity", type_=String())
_SINCE = bindparam("since", type_=UtcDateTime())
_NOW = bindparam("now", type_=UtcDateTime())
_RECENT = (
    select(literal("n").label("kind"), FlowRun.flow_id.label("flow_id"), func.count().label("value"))
    .where(FlowRun.flow_id.in_(_IDS), FlowRun.created_at > _SINCE, FlowRun.status.in_([s.value for s in ADMITTED]))
    .group_by(FlowRun.flow_id)
)
_RECENT_AND_MARKS = union_all(
    _RECENT,
    select(literal("m").label("kind"), FlowLoopMark.flow_id.label("flow_id"), FlowLoopMark.depth.label("value"))
    .where(FlowLoopMark.flow_id.in_(_IDS), FlowLoopMark.entity_id == _ENTITY, FlowLoopMark.expires_at > _NOW),
)


def event_context(
    *, body: Any, event_type: str, source: str, source_ref: str | None, event_id: int | None,
    received_at: datetime | None, workspace_id: str, settings: Mapping[str, Any], variables: dict[str, Any] | None = None,
) -> Context:
    meta = {
        "type": event_type, "source": source, "source_ref": source_ref, "id": event_id,
        "received_at": received_at.isoformat() if received_at else None,
    }
    return Context(body, meta, {"id": workspace_id}, settings, variables if variables is not None else {})


def evaluation_budget(config: FlowsConfig) -> Budget:
    """A fresh budget for one evaluation (a flow's conditions, or one action's `when` and templates)."""
    return Budget(config.evaluation_budget, config.evaluation_timeout)


def budgeted(ctx: Context, config: FlowsConfig) -> Context:
    """``ctx`` with a fresh budget (the variables stay shared)."""
    return dataclasses.replace(ctx, budget=evaluation_budget(config))


def evaluate_conditions(flows: Sequence[CachedFlow], ctx: Context, config: FlowsConfig) -> list[bool | ConditionError]:
    """Each flow's condition, each with its own budget; an error is the outcome of that flow only.

    Runs in the engine's thread pool (:meth:`FlowEngine.offload`)."""
    outcomes: list[bool | ConditionError] = []
    for flow in flows:
        try:
            outcomes.append(flow.compiled.condition.evaluate(budgeted(ctx, config)))
        except ConditionError as exc:
            outcomes.append(exc)
    return outcomes


def evaluate_inline(
    flows: Sequence[CachedFlow], ctx: Context, config: FlowsConfig
) -> list[bool | ConditionError] | None:
    """The outcomes when all of ``flows`` are decided within one small slice on the loop, else None
    (then :func:`evaluate_conditions` in the pool)."""
    steps, seconds = min(INLINE_STEPS, config.evaluation_budget), min(INLINE_SECONDS, config.evaluation_timeout)
    inline = dataclasses.replace(ctx, budget=Budget(steps, seconds))
    outcomes: list[bool | ConditionError] = []
    for flow in flows:
        try:
            outcomes.append(flow.compiled.condition.evaluate(inline))
        except BudgetExceeded:
            return None
        except ConditionError as exc:
            outcomes.append(exc)
    return outcomes


def event_entity_id(event_type: str, source: str, body: Any) -> str | None:
    """The id of the entity a Clockify event is about (the loop guard's key)."""
    spec = EVENTS.get(event_type)
    if source != EventSource.CLOCKIFY or spec is None or not isinstance(body, dict):
        return None
    found = entity_id(spec.kind, body, spec.id_field)
    return found[:200] if found else None


class FlowEngine:
    """The flows capability of one runtime: cache, counters, SSRF policy, executor wake-up."""

    def __init__(self, resolver: Resolver | None = None) -> None:
        # Tests may swap the resolver to map names to addresses of their choice.
        self.resolver: Resolver = resolver or system_resolver
        self.wakeup = asyncio.Event()
        self._cache: dict[str, CachedFlow] = {}
        self._counts: dict[str, list[int]] = {}
        self._last_match: dict[str, datetime] = {}
        self._policy: NetworkPolicy | None = None
        self._pool: ThreadPoolExecutor | None = None
        # Offloaded calls in progress, by function name (what the pool is busy with).
        self.running: Counter[str] = Counter()
        # How often a stored definition was compiled, and how often the cache answered instead:
        # a flow is compiled once per version, whatever the number of events it sees.
        self.compilations = 0
        self.cache_hits = 0

    async def offload(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a budgeted evaluation off the event loop, in the engine's own small thread pool
        (not the loop's default executor, which DNS lookups share)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(EVALUATION_THREADS, thread_name_prefix="flow-eval")
        name = getattr(function, "__name__", type(function).__name__)
        self.running[name] += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, functools.partial(function, *args, **kwargs)
            )
        finally:
            self.running[name] -= 1

    # compiled flows ------------------------------------------------------------------------
    def policy(self, allowlist: Iterable[str]) -> NetworkPolicy:
        """Built once: the allowlist is a setting, the same for the whole runtime."""
        if self._policy is None:
            self._policy = NetworkPolicy.from_allowlist(allowlist)
        return self._policy

    async def compile(self, runtime: Runtime, flow: Flow) -> CachedFlow:
        """The compiled form of ``flow``, from the cache when its version is current.

        Compiling parses every path of the flow (up to thousands): done in the thread pool."""
        cached = self._cache.get(flow.id)
        if cached is not None and cached.version == flow.version:
            self.cache_hits += 1
            return cached
        self.compilations += 1
        config = runtime.settings.flows
        compiled = await self.offload(
            compile_stored, flow.trigger, flow.conditions, flow.actions,
            profile=runtime.profile, config=config, policy=self.policy(config.http_allowlist),
        )
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        entry = CachedFlow(flow.id, flow.version, compiled, flow.max_runs_per_minute, flow.record_unmatched)
        self._cache[flow.id] = entry
        return entry

    async def _current(
        self, runtime: Runtime, session: AsyncSession, workspace_id: str
    ) -> tuple[Mapping[str, Any] | None, list[CachedFlow]]:
        """The installation's settings (None: not installed, or flows switched off) and its enabled flows, compiled.

        One round trip brings the installation row and the (id, version) of every enabled
        flow; only flows whose version moved are loaded and compiled again.
        """
        rows = (await session.execute(_CURRENT, {"workspace_id": workspace_id})).all()
        settings: Mapping[str, Any] | None = None
        current: list[tuple[str, int]] = []
        for row in rows:
            if row.kind == "i":
                if row.status != InstallationStatus.DELETED and flag(row.settings, "flows_enabled"):
                    settings = values(row.settings)
            else:
                current.append((row.id, row.version))
        current.sort()
        stale = [fid for fid, version in current if (c := self._cache.get(fid)) is None or c.version != version]
        self.cache_hits += len(current) - len(stale)
        if stale:
            for flow in (await session.execute(select(Flow).where(Flow.id.in_(stale)))).scalars():
                try:
                    await self.compile(runtime, flow)
                except ClockifyError as exc:
                    # Saved flows were valid; a tier or allowlist change can break one later.
                    await disable_flow(session, flow.id, f"the definition is no longer valid: {exc.detail}")
                    log.warning("flows.definition_invalid", flow_id=flow.id, error=exc.detail)
        return settings, [c for fid, v in current if (c := self._cache.get(fid)) is not None and c.version == v]

    # inbox handler -------------------------------------------------------------------------
    async def prepare(self, runtime: Runtime, event: ClaimedEvent) -> None:
        return None

    async def apply(self, runtime: Runtime, session: AsyncSession, event: ClaimedEvent, prepared: Any) -> None:
        settings, flows = await self._current(runtime, session, event.workspace_id)
        if settings is None:
            return
        candidates = [f for f in flows if f.compiled.trigger.matches(event.event_type, event.source, event.source_ref)]
        if not candidates:
            return
        ctx = event_context(
            body=event.body, event_type=event.event_type, source=event.source, source_ref=event.source_ref,
            event_id=event.id, received_at=event.received_at, workspace_id=event.workspace_id, settings=settings,
        )
        now = utcnow()
        entity = event_entity_id(event.event_type, event.source, event.body)
        trigger = {"source": event.source, "source_ref": event.source_ref,
                   "received_at": event.received_at.isoformat(), "body": event.body}
        rows: list[FlowRun] = []
        matches: list[CachedFlow] = []
        failures: list[tuple[str, str]] = []
        tally = {"matched": 0, "unmatched": 0, "error": 0}
        config = runtime.settings.flows
        outcomes = evaluate_inline(candidates, ctx, config)
        if outcomes is None:
            outcomes = await self.offload(evaluate_conditions, candidates, ctx, config)
        for flow, matched in zip(candidates, outcomes, strict=True):
            counts = self._counts.setdefault(flow.id, [0, 0])
            counts[0] += 1
            if isinstance(matched, ConditionError):
                tally["error"] += 1
                rows.append(_run(flow, event, entity, trigger, RunStatus.CONDITION_ERROR, now, matched=False,
                                 error=str(matched)))
                failures.append((flow.id, str(matched)))
                if isinstance(matched, BudgetExceeded):
                    log.warning("flows.budget_exceeded", flow_id=flow.id, event_id=event.id, error=str(matched))
                continue
            if matched:
                tally["matched"] += 1
                counts[1] += 1
                self._last_match[flow.id] = now
                matches.append(flow)
            else:
                tally["unmatched"] += 1
                if flow.record_unmatched:
                    rows.append(_run(flow, event, entity, None, RunStatus.NOT_MATCHED, now, matched=False))
        for result, count in tally.items():
            if count:
                runtime.metrics.flow_evaluations.labels(result).inc(count)
        admitted = await self._admit(config.loop_max_depth, session, matches, entity, now) if matches else {}
        for flow in matches:
            status, depth = admitted[flow.id]
            rows.append(_run(flow, event, entity, trigger, status, now, matched=True, depth=depth))
            if status != RunStatus.QUEUED:
                log.info("flows.not_admitted", flow_id=flow.id, event_id=event.id, status=status, depth=depth)
        session.add_all(rows)
        for row in rows:
            if row.status != RunStatus.QUEUED:
                runtime.metrics.flows_executed.labels(row.status.lower()).inc()
        for flow_id, error in failures:
            await record_failure(session, flow_id, error, config.failure_threshold)
        if any(row.status == RunStatus.QUEUED for row in rows):
            after_commit(session, self.wakeup.set)  # the event's transaction commits the runs

    async def _admit(
        self, max_depth: int, session: AsyncSession, flows: list[CachedFlow], entity: str | None, now: datetime
    ) -> dict[str, tuple[RunStatus, int]]:
        """Loop guard and rate limit for the flows an event matched: two queries, whatever their number."""
        params: dict[str, Any] = {"ids": [flow.id for flow in flows], "since": now - timedelta(minutes=1)}
        if entity is not None:
            params.update(entity=entity, now=now)
        query = _RECENT if entity is None else _RECENT_AND_MARKS
        depths: dict[str, int] = {}
        counts: dict[str, int] = {}
        for kind, flow_id, value in (await session.execute(query, params)).all():
            (depths if kind == "m" else counts)[flow_id] = int(value)
        out: dict[str, tuple[RunStatus, int]] = {}
        for flow in flows:
            depth = depths.get(flow.id, 0)
            if depth > max_depth:
                out[flow.id] = (RunStatus.LOOP_BLOCKED, depth)
            elif counts.get(flow.id, 0) >= flow.max_runs_per_minute:
                out[flow.id] = (RunStatus.RATE_LIMITED, depth)
            else:
                out[flow.id] = (RunStatus.QUEUED, depth)
        return out

    # counters --------------------------------------------------------------------------------
    async def flush_counters(self, sessions: async_sessionmaker[AsyncSession]) -> int:
        """Add the in-memory evaluation counts to ``flows``; returns the flows touched."""
        counts, self._counts = self._counts, {}
        last, self._last_match = self._last_match, {}
        if not counts:
            return 0
        async with sessions.begin() as session:
            for flow_id in sorted(counts):  # one lock order for every worker
                evaluated, matched = counts[flow_id]
                values: dict[str, Any] = {
                    "evaluated_count": Flow.evaluated_count + evaluated, "matched_count": Flow.matched_count + matched,
                    "updated_at": Flow.updated_at,  # counters are not a change of the flow
                }
                if flow_id in last:
                    values["last_matched_at"] = last[flow_id]
                await session.execute(update(Flow).where(Flow.id == flow_id).values(**values))
        return len(counts)


def _run(
    flow: CachedFlow, event: ClaimedEvent, entity: str | None, trigger: dict[str, Any] | None, status: RunStatus,
    now: datetime, *, matched: bool, depth: int = 0, error: str | None = None,
) -> FlowRun:
    final = status != RunStatus.QUEUED
    return FlowRun(
        flow_id=flow.id, workspace_id=event.workspace_id, inbox_event_id=event.id, event_type=event.event_type,
        entity_id=entity, matched=matched, status=status, chain_depth=depth, attempts=0,
        next_attempt_at=None if final else now, trigger=trigger, state=None, actions=[], error=error,
        created_at=now, started_at=now if final else None, finished_at=now if final else None,
    )


async def disable_flow(session: AsyncSession, flow_id: str, reason: str) -> None:
    await session.execute(
        update(Flow).where(Flow.id == flow_id).values(enabled=False, disabled_reason=reason[:2000])
    )


async def record_failure(session: AsyncSession, flow_id: str, error: str, threshold: int) -> bool:
    """Count a failed run; the ``threshold``-th in a row disables the flow. True when it did."""
    row = (
        await session.execute(
            update(Flow)
            .where(Flow.id == flow_id)
            .values(consecutive_failures=Flow.consecutive_failures + 1, updated_at=Flow.updated_at)
            .returning(Flow.consecutive_failures, Flow.enabled)
        )
    ).first()
    if row is None or not row.enabled or row.consecutive_failures < threshold:
        return False
    await disable_flow(
        session, flow_id, f"Disabled after {row.consecutive_failures} failed runs in a row; last error: {error}"
    )
    log.warning("flows.auto_disabled", flow_id=flow_id, failures=row.consecutive_failures)
    return True


async def record_success(session: AsyncSession, flow_id: str) -> None:
    await session.execute(
        update(Flow)
        .where(Flow.id == flow_id, Flow.consecutive_failures != 0)
        .values(consecutive_failures=0, updated_at=Flow.updated_at)
    )


def flow_engine(runtime: Runtime) -> FlowEngine:
    """The engine registered on ``runtime`` (by the FLOWS capability, clockify_core/flows/capability.py)."""
    for handler in runtime.event_handlers:
        if isinstance(handler, FlowEngine):
            return handler
    raise LookupError("the flow engine is not registered on this runtime")
