"""The condition compiler and evaluator on their own: semantics, ReDoS guard, properties."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clockify_core.flows.conditions import (
    ConditionError,
    Limits,
    Node,
    compile_condition,
    json_equal,
)
from clockify_core.flows.paths import Context, compile_path

LIMITS = Limits(regex_timeout=0.05)


def ctx(body: Any, **variables: Any) -> Context:
    return Context(body, {"type": "NEW_TIME_ENTRY", "source": "clockify"}, {"id": "ws"}, {"flows_enabled": True},
                   dict(variables))


def compiled(raw: Any) -> Node:
    node, problems = compile_condition(raw, LIMITS)
    assert problems == [], problems
    return node


def test_missing_null_and_types() -> None:
    body = {"a": None, "n": 5, "s": "5", "t": True, "list": [1, "x"], "nested": {"k": [{"v": 1}, {"v": 2}]}}
    cases = [
        ({"path": "$.a", "op": "exists"}, False),
        ({"path": "$.a", "op": "eq", "value": None}, True),
        ({"path": "$.gone", "op": "eq", "value": None}, False),
        ({"path": "$.gone", "op": "ne", "value": 1}, True),
        ({"path": "$.n", "op": "eq", "value": 5.0}, True),
        ({"path": "$.n", "op": "eq", "value": "5"}, False),
        ({"path": "$.s", "op": "eq", "value": 5, "as": "number"}, True),
        ({"path": "$.n", "op": "gt", "value": "4"}, False),  # number vs string: not ordered
        ({"path": "$.s", "op": "gt", "value": 4, "as": "number"}, True),
        ({"path": "$.t", "op": "eq", "value": 1}, False),
        ({"path": "$.t", "op": "eq", "value": "true", "as": "string"}, True),
        ({"path": "$.list", "op": "contains", "value": "x"}, True),
        ({"path": "$.list", "op": "contains", "value": 2}, False),
        ({"path": "$.nested.k[*].v", "op": "gt", "value": 1}, True),
        ({"path": "$.nested.k[*].v", "op": "ne", "value": 3}, True),
        ({"path": "$.nested.k[*].v", "op": "ne", "value": 2}, False),
        ({"path": "$.nested.k[-1].v", "op": "eq", "value": 2}, True),
        ({"path": "$..v", "op": "in", "value": [7, 2]}, True),
        ({"path": "$vars.x", "op": "exists"}, True),
        ({"path": "$.n", "op": "in", "value": ["5"]}, False),
    ]
    for raw, expected in cases:
        assert compiled(raw).evaluate(ctx(body, x=0)) is expected, raw


def test_durations_and_datetimes() -> None:
    body = {"d": "PT1H30M", "n": 5400, "bad": "soon", "start": "2025-06-01T08:00:00Z"}
    assert compiled({"path": "$.d", "op": "eq", "value": 5400, "as": "duration"}).evaluate(ctx(body))
    assert compiled({"path": "$.n", "op": "gte", "value": "PT1H30M", "as": "duration"}).evaluate(ctx(body))
    assert not compiled({"path": "$.bad", "op": "lt", "value": "PT1H", "as": "duration"}).evaluate(ctx(body))
    assert compiled({"path": "$.start", "op": "lt", "value": "2025-06-01T10:00:00+02:00", "as": "datetime"}).evaluate(
        ctx(body)
    ) is False
    assert compiled({"path": "$.start", "op": "lte", "value": "2025-06-01T10:00:00+02:00", "as": "datetime"}).evaluate(
        ctx(body)
    )


@pytest.mark.parametrize(
    ("raw", "location", "kind"),
    [
        ({"path": "$.a", "op": "gt"}, ("value",), "missing"),
        ({"path": "$.a", "op": "in", "value": 3}, ("value",), "invalid"),
        ({"path": "$.a", "op": "exists", "value": "yes"}, ("value",), "invalid"),
        ({"path": "$.a", "op": "regex", "value": "a" * 300}, ("value",), "too_large"),
        ({"path": "$.a", "op": "contains", "value": "x", "as": "number"}, ("as",), "bad_coercion"),
        ({"path": "$.a", "op": "eq", "value": 1, "as": "money"}, ("as",), "bad_coercion"),
        ({"all": {"path": "$.a", "op": "exists"}}, ("all",), "invalid"),
        ({"all": [], "any": []}, (), "invalid"),
        ([1, 2], (), "invalid"),
    ],
)
def test_compile_errors_carry_locations(raw: Any, location: tuple[str, ...], kind: str) -> None:
    _node, problems = compile_condition(raw, LIMITS)
    assert (location, kind) in {(p.location, p.kind) for p in problems}, problems


def test_size_and_depth_limits() -> None:
    wide = {"any": [{"path": "$.a", "op": "exists"}] * 120}
    assert any(p.kind == "too_large" for p in compile_condition(wide, LIMITS)[1])
    deep: dict[str, Any] = {"path": "$.a", "op": "exists"}
    for _ in range(20):
        deep = {"not": deep}
    assert any(p.kind == "too_deep" for p in compile_condition(deep, LIMITS)[1])


def test_catastrophic_regex_is_cut_off() -> None:
    node = compiled({"path": "$.s", "op": "regex", "value": "(a|aa)+$"})
    with pytest.raises(ConditionError):
        node.evaluate(ctx({"s": "a" * 80 + "b"}))
    assert compiled({"path": "$.s", "op": "regex", "value": "^a+$"}).evaluate(ctx({"s": "a" * 80}))


# Properties ----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)
scalars = st.none() | st.booleans() | st.integers(-100, 100) | st.text(max_size=4)
paths = st.sampled_from(["$.a", "$.b", "$.a.b", "$.a[0]", "$.list[*]", "$..b", "$vars.v", "$.missing"])
operators = st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "contains", "in", "exists", "regex"])


@st.composite
def leaves(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(operators)
    leaf: dict[str, Any] = {"path": draw(paths), "op": op}
    if op == "in":
        leaf["value"] = draw(st.lists(scalars, max_size=3))
    elif op == "exists":
        leaf["value"] = draw(st.booleans())
    elif op == "regex":
        leaf["value"] = draw(st.sampled_from(["^a", "b$", "x|y", "[0-9]+"]))
    elif op in ("gt", "gte", "lt", "lte"):
        leaf["value"] = draw(st.integers(-5, 5) | st.text(max_size=3))
    else:
        leaf["value"] = draw(scalars)
    return leaf


conditions = st.recursive(
    leaves(),
    lambda inner: st.builds(lambda xs: {"all": xs}, st.lists(inner, max_size=3))
    | st.builds(lambda xs: {"any": xs}, st.lists(inner, max_size=3))
    | st.builds(lambda x: {"not": x}, inner),
    max_leaves=8,
)
bodies = st.fixed_dictionaries(
    {}, optional={"a": json_values, "b": json_values, "list": st.lists(scalars, max_size=4)}
)


@settings(max_examples=300, deadline=None)
@given(conditions, bodies, scalars)
def test_evaluation_is_total_and_logical(raw: dict[str, Any], body: dict[str, Any], variable: Any) -> None:
    node = compiled(raw)
    context = ctx(body, v=variable)
    result = node.evaluate(context)  # never raises
    assert isinstance(result, bool)
    assert compiled({"not": raw}).evaluate(context) is (not result)
    assert compiled({"all": [raw, raw]}).evaluate(context) is result
    assert compiled({"any": [raw, {"not": raw}]}).evaluate(context) is True
    explained = node.explain(context)
    assert explained["result"] is result


@settings(max_examples=200, deadline=None)
@given(conditions, conditions, bodies)
def test_de_morgan(a: dict[str, Any], b: dict[str, Any], body: dict[str, Any]) -> None:
    context = ctx(body, v=None)
    left = compiled({"not": {"all": [a, b]}}).evaluate(context)
    right = compiled({"any": [{"not": a}, {"not": b}]}).evaluate(context)
    assert left is right


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_a_present_value_equals_itself_and_eq_ne_disagree(value: Any) -> None:
    context = ctx({"a": value})
    assert compiled({"path": "$.a", "op": "eq", "value": value}).evaluate(context)
    assert not compiled({"path": "$.a", "op": "ne", "value": value}).evaluate(context)
    assert json_equal(value, value)
    assert compile_path("$.a").resolve(context) == value
