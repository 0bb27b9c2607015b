"""A flow definition compiled once: trigger, condition and actions, with every error located.

:func:`compile_definition` checks a definition as the API receives it and raises
``ValidationFailed`` (422) whose ``errors`` name the JSON location of each problem
(``body.conditions.all.1.op``), or ``MethodNotAllowedForTier`` (403) for what the
service's tier does not allow. Workers compile stored definitions the same way
(:func:`compile_stored`), without the checks that depend on other rows.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from clockify_core.config import FlowsConfig
from clockify_core.errors import MethodNotAllowedForTier, ValidationFailed
from clockify_core.flows.actions import Action, ActionLimits, compile_actions
from clockify_core.flows.conditions import Limits, Node, Problem, compile_condition, render_location
from clockify_core.flows.network import NetworkPolicy
from clockify_core.tiers import ServiceProfile
from clockify_core.webhooks.models import EventSource

MAX_TRIGGER_EVENTS = 100


@dataclass(frozen=True, slots=True)
class Trigger:
    source: str  # clockify or custom
    events: frozenset[str]  # empty with a custom source: any event type
    custom_source: str | None

    def matches(self, event_type: str, source: str, source_ref: str | None) -> bool:
        if source != self.source:
            return False
        if self.source == EventSource.CUSTOM and source_ref != self.custom_source:
            return False
        return not self.events or event_type in self.events


@dataclass(frozen=True)
class CompiledFlow:
    trigger: Trigger
    condition: Node
    actions: tuple[Action, ...]


def condition_limits(config: FlowsConfig) -> Limits:
    return Limits(
        max_nodes=config.max_condition_nodes, regex_max_length=config.regex_max_length,
        regex_max_input=config.regex_max_input, regex_timeout=config.regex_timeout,
    )


def action_limits(config: FlowsConfig) -> ActionLimits:
    return ActionLimits(condition_limits(config), config.default_timeout, config.max_timeout)


def _trigger(raw: Any, profile: ServiceProfile, custom_sources: Collection[str] | None) -> tuple[Trigger | None, list[Problem], list[Problem]]:
    invalid: list[Problem] = []
    tier: list[Problem] = []
    loc: tuple[str | int, ...] = ("trigger",)
    if not isinstance(raw, dict):
        return None, [Problem(loc, 'trigger is {"events": [...]} or {"custom_source": "<id>"}')], []
    for key in sorted(set(raw) - {"events", "custom_source"}):
        invalid.append(Problem((*loc, key), f"unknown key {key!r}; a trigger has events and/or custom_source"))
    events = raw.get("events", [])
    if not isinstance(events, list) or not all(isinstance(e, str) and e for e in events):
        invalid.append(Problem((*loc, "events"), "events is a list of event type names"))
        events = []
    if len(events) > MAX_TRIGGER_EVENTS:
        invalid.append(Problem((*loc, "events"), f"at most {MAX_TRIGGER_EVENTS} event types"))
    custom = raw.get("custom_source")
    if custom is None:
        if not events:
            invalid.append(Problem((*loc, "events"), "name at least one Clockify event", "missing"))
        for i, event in enumerate(events):
            if event not in profile.events:
                tier.append(Problem((*loc, "events", i), f"{event!r} is not an event {profile.title} receives",
                                    "tier_policy"))
        return Trigger(EventSource.CLOCKIFY, frozenset(events), None), invalid, tier
    if not isinstance(custom, str) or not custom:
        invalid.append(Problem((*loc, "custom_source"), "custom_source is the id of a custom webhook source"))
        return None, invalid, tier
    if not profile.custom_webhooks:
        tier.append(Problem((*loc, "custom_source"), f"{profile.title} has no custom webhook sources", "tier_policy"))
    elif custom_sources is not None and custom not in custom_sources:
        invalid.append(Problem((*loc, "custom_source"), f"no custom webhook source {custom!r} in this workspace",
                               "unknown_source"))
    return Trigger(EventSource.CUSTOM, frozenset(events), custom), invalid, tier


def compile_definition(
    data: Mapping[str, Any],
    *,
    profile: ServiceProfile,
    config: FlowsConfig,
    policy: NetworkPolicy,
    custom_sources: Collection[str] | None,
    prefix: tuple[str, ...] = ("body",),
) -> CompiledFlow:
    """Compile ``data`` ({trigger, conditions, actions}) or raise with every problem found."""
    try:
        size = len(orjson.dumps({k: data.get(k) for k in ("trigger", "conditions", "actions")}))
    except TypeError:
        # JSON parsed by the API keeps integers of any size; orjson (and so the executor and
        # the templates, which serialise values with it) takes 64 bits at most.
        raise ValidationFailed(
            "the flow definition holds an integer outside the 64-bit range",
            errors=[{"location": render_location(prefix, ()), "message": "integer out of range", "kind": "out_of_range"}],
        ) from None
    if size > config.max_definition_bytes:
        raise ValidationFailed(
            f"the flow definition is {size} bytes; at most {config.max_definition_bytes}",
            errors=[{"location": render_location(prefix, ()), "message": "definition too large", "kind": "too_large"}],
        )
    trigger, invalid, tier = _trigger(data.get("trigger"), profile, custom_sources)
    condition, condition_problems = compile_condition(data.get("conditions"), condition_limits(config), ("conditions",))
    invalid.extend(condition_problems)
    raw_actions = data.get("actions", [])
    if isinstance(raw_actions, list) and len(raw_actions) > config.max_actions:
        invalid.append(Problem(("actions",), f"a flow has at most {config.max_actions} actions", "too_large"))
    actions, action_problems = compile_actions(
        raw_actions, profile=profile, limits=action_limits(config), policy=policy
    )
    invalid.extend(action_problems.invalid)
    tier.extend(action_problems.tier)
    if invalid:
        errors = [_error(prefix, p) for p in invalid]
        raise ValidationFailed(f"{errors[0]['location']}: {errors[0]['message']}", errors=errors)
    if tier:
        errors = [_error(prefix, p) for p in tier]
        raise MethodNotAllowedForTier(f"{errors[0]['location']}: {errors[0]['message']}", errors=errors)
    assert trigger is not None
    _check_cost(condition, actions, config.max_flow_cost, prefix)
    return CompiledFlow(trigger, condition, actions)


def flow_cost(condition: Node, actions: tuple[Action, ...]) -> int:
    """The static cost of a flow: its conditions and every action's `when` (docs/flows.md)."""
    return condition.cost + sum(action.when.cost for action in actions)


def _check_cost(condition: Node, actions: tuple[Action, ...], budget: int, prefix: tuple[str, ...]) -> None:
    """Refuse a flow whose selectors could cost more than ``budget`` per event, naming its costly parts."""
    total = flow_cost(condition, actions)
    if total <= budget:
        return
    parts: list[tuple[int, tuple[str | int, ...]]] = [(condition.cost, ("conditions",))]
    parts += [(action.when.cost, ("actions", index, "when")) for index, action in enumerate(actions)]
    errors = [
        {"location": render_location(prefix, location), "kind": "too_costly",
         "message": f"costs {cost} of the flow's {total}; a flow may cost at most {budget} (FLOWS__MAX_FLOW_COST)"}
        for cost, location in sorted(parts, key=lambda part: -part[0]) if cost
    ]
    raise ValidationFailed(
        f"{errors[0]['location']}: the flow's conditions cost {total}, over the budget of {budget} "
        "(FLOWS__MAX_FLOW_COST; `..`, `[*]` and filters cost most, see docs/flows.md)",
        errors=errors,
    )


def _error(prefix: tuple[str, ...], problem: Problem) -> dict[str, str]:
    return {"location": render_location(prefix, problem.location), "message": problem.message, "kind": problem.kind}


def compile_stored(
    trigger: Any, conditions: Any, actions: Any, *, profile: ServiceProfile, config: FlowsConfig, policy: NetworkPolicy
) -> CompiledFlow:
    """A stored definition, as a worker sees it (raises like :func:`compile_definition`)."""
    return compile_definition(
        {"trigger": trigger, "conditions": conditions, "actions": actions},
        profile=profile, config=config, policy=policy, custom_sources=None, prefix=(),
    )
