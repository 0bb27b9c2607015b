"""Conditions: parsed and checked when a flow is saved, compiled to closures, evaluated per event.

A condition is a leaf ``{"path", "op", "value", "as"?, "ignore_case"?}`` or a group
``{"all": [...]}``, ``{"any": [...]}``, ``{"not": {...}}``. Operators and their exact
meaning are in docs/flows.md. Evaluation is total: a missing value, a value of another
type or an unparsable duration makes a leaf false, never an exception. The one
exception is :class:`ConditionError`, raised when a regex exceeds its time limit or the
evaluation its budget (``BudgetExceeded``, see :class:`clockify_core.flows.paths.Budget`).

Regexes use the ``regex`` module so that each match has a timeout (a guard against
catastrophic backtracking), on top of a bounded pattern length and a bounded input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import regex

from clockify_core.flows.paths import MISSING, Context, PathError, Selector, compile_path
from clockify_core.flows.paths import (
    ConditionError as ConditionError,  # where callers import it from
)
from clockify_core.mirror.mapping import parse_duration, parse_time

OPERATORS: Final = ("eq", "ne", "gt", "gte", "lt", "lte", "contains", "in", "exists", "regex")
ORDERING: Final = frozenset({"gt", "gte", "lt", "lte"})
COERCIONS: Final = ("number", "string", "duration", "datetime")
LEAF_KEYS: Final = frozenset({"path", "op", "value", "as", "ignore_case"})
GROUP_KEYS: Final = ("all", "any", "not")
MAX_DEPTH = 16
TRACE_VALUE_CHARS = 200
COST_REGEX = 10  # static weight of a `regex` leaf on top of its selector's; also charged per value searched


@dataclass(frozen=True, slots=True)
class Limits:
    max_nodes: int = 100
    regex_max_length: int = 256
    regex_max_input: int = 10_000
    regex_timeout: float = 0.05


@dataclass
class Problem:
    location: tuple[str | int, ...]
    message: str
    kind: str = "invalid"


@dataclass
class _Compiler:
    limits: Limits
    problems: list[Problem] = field(default_factory=list)
    nodes: int = 0

    def fail(self, location: tuple[str | int, ...], message: str, kind: str = "invalid") -> None:
        self.problems.append(Problem(location, message, kind))


Evaluator = Callable[[Context], bool]


class Node:
    """A compiled condition: ``evaluate`` is a closure built once (no per-event dispatch)."""

    evaluate: Evaluator
    cost: int = 0

    def explain(self, ctx: Context) -> dict[str, Any]:
        """The result with the reason, node by node (dry-run)."""
        raise NotImplementedError


class _Always(Node):
    def __init__(self) -> None:
        self.evaluate = lambda ctx: True

    def explain(self, ctx: Context) -> dict[str, Any]:
        return {"result": True, "always": True}


ALWAYS: Final[Node] = _Always()


def _by_cost(children: tuple[Node, ...]) -> tuple[Evaluator, ...]:
    """Cheap checks first, so all/any stop before the costly ones (conditions have no side effects)."""
    return tuple(child.evaluate for child in sorted(children, key=lambda child: child.cost))


class _All(Node):
    def __init__(self, children: tuple[Node, ...]) -> None:
        self.children = children
        self.cost = sum(child.cost for child in children)
        checks = _by_cost(children)

        def evaluate(ctx: Context) -> bool:
            for check in checks:  # noqa: SIM110 - no generator per call on the hot path
                if not check(ctx):
                    return False
            return True

        self.evaluate = evaluate

    def explain(self, ctx: Context) -> dict[str, Any]:
        parts = [child.explain(ctx) for child in self.children]
        return {"all": parts, "result": all(p["result"] for p in parts)}


class _Any(Node):
    def __init__(self, children: tuple[Node, ...]) -> None:
        self.children = children
        self.cost = sum(child.cost for child in children)
        checks = _by_cost(children)

        def evaluate(ctx: Context) -> bool:
            for check in checks:  # noqa: SIM110 - no generator per call on the hot path
                if check(ctx):
                    return True
            return False

        self.evaluate = evaluate

    def explain(self, ctx: Context) -> dict[str, Any]:
        parts = [child.explain(ctx) for child in self.children]
        return {"any": parts, "result": any(p["result"] for p in parts)}


class _Not(Node):
    def __init__(self, child: Node) -> None:
        self.child = child
        self.cost = child.cost
        check = child.evaluate
        self.evaluate = lambda ctx: not check(ctx)

    def explain(self, ctx: Context) -> dict[str, Any]:
        inner = self.child.explain(ctx)
        return {"not": inner, "result": not inner["result"]}


class _Leaf(Node):
    def __init__(self, selector: Selector, op: str, value: Any, test: Callable[[Any], bool]) -> None:
        self.selector, self.op, self.value = selector, op, value
        decide = _leaf_decider(selector, op, value, test)
        resolve = selector.resolve
        self.decide = decide
        self.evaluate = lambda ctx: decide(resolve(ctx), ctx)
        # The static weight (docs/flows.md, "Evaluation budgets"): the selector's, a regex on top.
        self.cost = selector.cost + (COST_REGEX if op == "regex" else 0)

    def explain(self, ctx: Context) -> dict[str, Any]:
        actual = self.selector.resolve(ctx)
        return {
            "path": self.selector.text, "op": self.op, "value": self.value,
            "actual": "<missing>" if actual is MISSING else _clip(actual),
            "result": self.decide(actual, ctx),
        }


def _leaf_decider(
    selector: Selector, op: str, value: Any, test: Callable[[Any], bool]
) -> Callable[[Any, Context], bool]:
    """The leaf's result from what its selector found (a value, or the list of matches)."""
    if op == "exists":
        wanted = bool(value)
        if selector.singular:
            return lambda found, ctx: (found is not MISSING and found is not None) is wanted
        return lambda found, ctx: any(v is not None for v in found) is wanted
    if selector.singular:
        when_missing = op == "ne"  # a missing value is "not equal" to anything
        if op == "contains":
            # The one test that walks a selected value: a list item by item, a string in C.
            def contains_one(found: Any, ctx: Context) -> bool:
                if isinstance(found, list):
                    ctx.budget.charge(len(found))
                elif isinstance(found, str):
                    ctx.budget.charge(len(found) // 100)
                return when_missing if found is MISSING else test(found)

            return contains_one
        if op == "regex":
            # Charged before the search, so a time budget is checked before each regex (each may
            # take up to the regex timeout).
            def search_one(found: Any, ctx: Context) -> bool:
                ctx.budget.charge(COST_REGEX)
                return when_missing if found is MISSING else test(found)

            return search_one
        return lambda found, ctx: when_missing if found is MISSING else test(found)
    # A selector with many matches: `contains` asks whether the matches include the
    # value; `ne` is "none equal"; every other operator holds when one match does.
    if op == "contains":
        return lambda found, ctx: test(found)
    if op == "regex":
        # Each search may take up to the regex timeout: charged, so the time budget ends a long list.
        def search_each(found: Any, ctx: Context) -> bool:
            for v in found:
                ctx.budget.charge(COST_REGEX)
                if test(v):
                    return True
            return False

        return search_each
    if op == "ne":
        return lambda found, ctx: all(test(v) for v in found)
    return lambda found, ctx: any(test(v) for v in found)


TRACE_ITEMS = 20  # items of a list or members of an object shown in a trace
TRACE_BUDGET = 2000  # about the JSON characters of one traced value


def _clip(value: Any) -> Any:
    """``value`` as a trace shows it: strings, lists and objects cut, about TRACE_BUDGET characters
    in all. A dry-run explains up to hundreds of leaves, each of which may select the whole
    sample body (1 MiB): unclipped, the answer was that many copies of it, serialized on the
    event loop."""
    return _clipped(value, [TRACE_BUDGET])


def _clipped(value: Any, left: list[int]) -> Any:
    if isinstance(value, str):
        text = value if len(value) <= TRACE_VALUE_CHARS else value[:TRACE_VALUE_CHARS] + "…"
        left[0] -= len(text) + 2
        return text
    if isinstance(value, list):
        left[0] -= 2
        items: list[Any] = []
        for item in value[:TRACE_ITEMS]:
            if left[0] <= 0:
                break
            items.append(_clipped(item, left))
        return [*items, "…"] if len(items) < len(value) else items
    if isinstance(value, dict):
        left[0] -= 2
        members: dict[str, Any] = {}
        for count, (key, item) in enumerate(value.items()):
            if count >= TRACE_ITEMS or left[0] <= 0:
                members["…"] = f"{len(value) - count} more"
                break
            name = str(key)[:TRACE_VALUE_CHARS]
            left[0] -= len(name) + 3
            members[name] = _clipped(item, left)
        return members
    left[0] -= 8
    return value


# Equality and order of JSON values -----------------------------------------------------------

def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: ``true`` is not ``1``, ``1`` equals ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def _coerce(kind: str | None, value: Any) -> Any:
    """The value as ``kind`` for comparison, or MISSING when it is not one."""
    if kind is None:
        return value
    if kind == "duration":
        seconds = parse_duration(value)
        return MISSING if seconds is None else seconds
    if kind == "datetime":
        parsed = parse_time(value)
        return MISSING if parsed is None else parsed
    if kind == "number":
        if _is_number(value):
            return value
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return MISSING
        return MISSING
    if kind == "string":
        if isinstance(value, str):
            return value
        return MISSING if value is None or isinstance(value, dict | list) else _text(value)
    return MISSING


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _ordered(a: Any, b: Any) -> bool:
    """Both sides comparable with < (numbers, strings, datetimes of one kind)."""
    if _is_number(a) and _is_number(b):
        return True
    return (isinstance(a, str) and isinstance(b, str)) or (isinstance(a, datetime) and isinstance(b, datetime))


_ORDER: Mapping[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b,
}


def _folded(value: Any, ignore_case: bool) -> Any:
    return value.casefold() if ignore_case and isinstance(value, str) else value


# Compilation ---------------------------------------------------------------------------------

def compile_condition(
    raw: Any, limits: Limits, location: tuple[str | int, ...] = ()
) -> tuple[Node, list[Problem]]:
    """Compile ``raw`` (None means "always"); problems carry the JSON location of each error."""
    compiler = _Compiler(limits)
    if raw is None:
        return ALWAYS, []
    node = _compile(compiler, raw, location, 0)
    return node, compiler.problems


def _compile(c: _Compiler, raw: Any, loc: tuple[str | int, ...], depth: int) -> Node:
    c.nodes += 1
    if c.nodes == c.limits.max_nodes + 1:
        c.fail(loc, f"a condition may have at most {c.limits.max_nodes} nodes", "too_large")
    if depth > MAX_DEPTH:
        c.fail(loc, f"conditions may nest at most {MAX_DEPTH} levels", "too_deep")
        return ALWAYS
    if not isinstance(raw, dict):
        c.fail(loc, "a condition is an object: a leaf with path/op/value, or all/any/not")
        return ALWAYS
    groups = [key for key in GROUP_KEYS if key in raw]
    if groups:
        if len(raw) != 1:
            c.fail(loc, f"a {groups[0]!r} group has that one key only; found " + ", ".join(sorted(raw)))
            return ALWAYS
        key = groups[0]
        inner = raw[key]
        if key == "not":
            return _Not(_compile(c, inner, (*loc, "not"), depth + 1))
        if not isinstance(inner, list):
            c.fail((*loc, key), f"{key!r} takes a list of conditions")
            return ALWAYS
        children = tuple(_compile(c, child, (*loc, key, i), depth + 1) for i, child in enumerate(inner))
        return _All(children) if key == "all" else _Any(children)
    unknown = sorted(set(raw) - LEAF_KEYS)
    if unknown:
        c.fail((*loc, unknown[0]), f"unknown key {unknown[0]!r}; a leaf has path, op, value, as, ignore_case")
    return _compile_leaf(c, raw, loc)


def _compile_leaf(c: _Compiler, raw: Mapping[str, Any], loc: tuple[str | int, ...]) -> Node:
    ok = True
    selector: Selector | None = None
    if "path" not in raw:
        c.fail((*loc, "path"), "a condition needs a path", "missing")
        ok = False
    else:
        try:
            selector = compile_path(raw["path"])
        except PathError as exc:
            c.fail((*loc, "path"), str(exc), "bad_path")
            ok = False
    op = raw.get("op")
    if op not in OPERATORS:
        c.fail((*loc, "op"), f"unknown operator {op!r}; use one of " + ", ".join(OPERATORS), "bad_operator")
        return ALWAYS
    kind = raw.get("as")
    if kind is not None and (kind not in COERCIONS or op in ("exists", "regex", "contains")):
        where = ", ".join(COERCIONS)
        message = f"'as' must be one of {where}" if kind not in COERCIONS else f"'as' does not apply to {op!r}"
        c.fail((*loc, "as"), message, "bad_coercion")
        ok = False
    ignore_case = raw.get("ignore_case", False)
    if not isinstance(ignore_case, bool):
        c.fail((*loc, "ignore_case"), "ignore_case is true or false")
        ok = False
    test = _build_test(c, op, raw, loc, kind, ignore_case)
    if not ok or test is None or selector is None:
        return ALWAYS
    value = raw.get("value", True) if op == "exists" else raw.get("value")
    return _Leaf(selector, op, value, test)


def _build_test(
    c: _Compiler, op: str, raw: Mapping[str, Any], loc: tuple[str | int, ...], kind: str | None, ignore_case: bool
) -> Callable[[Any], bool] | None:
    vloc = (*loc, "value")
    has_value = "value" in raw
    value = raw.get("value")
    if op == "exists":
        if has_value and not isinstance(value, bool):
            c.fail(vloc, "exists takes true or false (default true)")
            return None
        return lambda _found: True  # decided in _Leaf.evaluate
    if not has_value:
        c.fail(vloc, f"{op!r} needs a value", "missing")
        return None
    if op == "regex":
        return _regex_test(c, value, vloc, ignore_case)
    if op == "contains":
        needle = _folded(value, ignore_case)

        def contains(found: Any) -> bool:
            if isinstance(found, str):
                return isinstance(needle, str) and needle in _folded(found, ignore_case)
            if isinstance(found, list):
                return any(json_equal(_folded(item, ignore_case), needle) for item in found)
            return False

        return contains
    if op == "in":
        if not isinstance(value, list):
            c.fail(vloc, "'in' takes a list of values")
            return None
        options = [_coerce(kind, _folded(v, ignore_case)) for v in value]
        if any(o is MISSING for o in options):
            c.fail(vloc, f"every value must be a valid {kind}", "bad_value")
            return None
        return lambda found: (f := _coerce(kind, _folded(found, ignore_case))) is not MISSING and any(
            json_equal(f, o) for o in options
        )
    expected = _coerce(kind, _folded(value, ignore_case))
    if expected is MISSING:
        c.fail(vloc, f"the value is not a valid {kind}", "bad_value")
        return None
    if op in ("eq", "ne") and kind is None and not ignore_case and (value is None or isinstance(value, str | bool)):
        # The common case, without coercion: a type check and ==.
        wanted_type = type(value)
        if op == "eq":
            return lambda found: type(found) is wanted_type and found == value
        return lambda found: not (type(found) is wanted_type and found == value)
    if op in ("eq", "ne"):
        if op == "eq":
            return lambda found: (f := _coerce(kind, _folded(found, ignore_case))) is not MISSING and json_equal(
                f, expected
            )
        return lambda found: not (
            (f := _coerce(kind, _folded(found, ignore_case))) is not MISSING and json_equal(f, expected)
        )
    if not (_is_number(expected) or isinstance(expected, str | datetime)):
        c.fail(vloc, f"{op!r} compares numbers, strings, durations or datetimes", "bad_value")
        return None
    compare = _ORDER[op]

    def ordered(found: Any) -> bool:
        f = _coerce(kind, _folded(found, ignore_case))
        return f is not MISSING and _ordered(f, expected) and compare(f, expected)

    return ordered


def _regex_test(c: _Compiler, pattern: Any, loc: tuple[str | int, ...], ignore_case: bool) -> Callable[[Any], bool] | None:
    limits = c.limits
    if not isinstance(pattern, str):
        c.fail(loc, "regex takes a pattern string")
        return None
    if len(pattern) > limits.regex_max_length:
        c.fail(loc, f"a pattern may be at most {limits.regex_max_length} characters", "too_large")
        return None
    try:
        compiled = regex.compile(pattern, flags=regex.V0 | (regex.IGNORECASE if ignore_case else 0))
    except (regex.error, ValueError, OverflowError) as exc:
        c.fail(loc, f"not a valid regular expression: {exc}", "bad_regex")
        return None
    max_input, timeout = limits.regex_max_input, limits.regex_timeout

    def search(found: Any) -> bool:
        if not isinstance(found, str):
            return False
        try:
            return compiled.search(found[:max_input], timeout=timeout) is not None
        except TimeoutError as exc:
            raise ConditionError(f"regex {pattern!r} took longer than {timeout}s") from exc

    return search


def render_location(prefix: Sequence[str | int], location: Sequence[str | int]) -> str:
    """``body.conditions.all.0.op``: the format FastAPI's own validation errors use."""
    return ".".join(str(part) for part in (*prefix, *location))
