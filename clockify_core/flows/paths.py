"""JSONPath selectors over an event and its context, compiled once.

``$`` is the event body. Named roots reach the context: ``$event`` (type, source,
source_ref, id, received_at), ``$workspace`` (id), ``$settings`` (the installation's
settings by id) and ``$vars`` (variables set by earlier actions). After the root comes
ordinary JSONPath (jsonpath-ng's extended syntax): ``$.timeInterval.duration``,
``$.tags[*].name``, ``$settings.flows_enabled``, ``$.customFieldValues[?(@.name == 'Area')].value``.

A selector is *singular* when it can match at most one value (only names and single
indices); it then yields that value or :data:`MISSING`. Any other selector yields the
list of everything it matched. Selectors made of names, indices and ``[*]`` skip
jsonpath-ng and walk the document directly (20x faster); filters and ``..`` use it.

Only plain JSONPath is accepted: names, indices, slices, ``[*]``, ``..`` and filters
comparing with ``== != < <= > >=``. Filter regexes (``=~``) and the extension functions
(``sub()``, arithmetic, ``sorted``...) are refused: a regex there would run without the
time limit the ``regex`` operator has. So is ``..`` inside a filter (it would scan a
subtree once per candidate).

Every selector is budgeted (docs/flows.md, "Evaluation budgets"): :attr:`Selector.cost`
is its static weight, summed when a flow is saved, and at run time each node a
selector visits is charged to the :class:`Budget` of the evaluation (``Context.budget``),
which raises :class:`BudgetExceeded` past its step or time limit. The paths that need
jsonpath-ng's parser are walked here, not by its ``find`` (which cannot be stopped).
"""

from __future__ import annotations

import functools
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Final

from jsonpath_ng import Child, Descendants, Fields, Index, Root, Slice, This
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext.filter import EQUALITY_ONLY_OPERATOR_MAP, And, Expression, Filter, Or, _compare
from jsonpath_ng.ext.parser import ExtendedJsonPathLexer, ExtendedJsonPathParser
from jsonpath_ng.jsonpath import JSONPath, Wildcard

ROOTS: Final = ("event", "workspace", "settings", "vars")
MAX_PATH_LENGTH = 500
_ROOT = re.compile(r"^\$(?P<root>[A-Za-z_]+)?(?P<rest>.*)$", re.DOTALL)


class _Missing:
    """No value at this path (distinct from a present ``null``)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()


class PathError(ValueError):
    """A selector that cannot be parsed; the message says why."""


class ConditionError(Exception):
    """A condition (or a template) could not be decided: a regex or the whole evaluation ran out of budget."""


class BudgetExceeded(ConditionError):
    """An evaluation used up its budget (steps or time); the message names the setting."""


YIELD_STEPS = 2048  # about a millisecond of walking


class Budget:
    """What one evaluation may still spend: node visits (``steps``) and wall-clock time.

    Charged by the selectors (each node they visit) and by the ``regex`` operator (each
    value it searches); :class:`BudgetExceeded` ends the evaluation. ``Budget()`` has no
    limit (tests, and callers that bound the work otherwise)."""

    __slots__ = ("deadline", "limit", "remaining", "since_yield", "timeout")

    def __init__(self, steps: int | None = None, timeout: float | None = None) -> None:
        self.limit = steps
        self.since_yield = 0
        self.remaining = steps if steps is not None else math.inf
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout if timeout is not None else math.inf

    def charge(self, steps: int) -> None:
        self.remaining -= steps
        self.since_yield += steps
        if self.since_yield > YIELD_STEPS:
            # Evaluations run in worker threads: let the event loop's thread take the GIL now
            # rather than at the next forced switch (sys.getswitchinterval(), 5 ms).
            self.since_yield = 0
            time.sleep(0)
        if self.remaining < 0:
            raise BudgetExceeded(
                f"evaluation budget exceeded: more than {self.limit} steps (FLOWS__EVALUATION_BUDGET)"
            )
        if self.deadline != math.inf and time.monotonic() > self.deadline:
            raise BudgetExceeded(
                f"evaluation budget exceeded: longer than {self.timeout}s (FLOWS__EVALUATION_TIMEOUT)"
            )


@dataclass(frozen=True, slots=True)
class Context:
    """What selectors look at while one event is evaluated."""

    body: Any
    event: Mapping[str, Any]
    workspace: Mapping[str, Any]
    settings: Mapping[str, Any]
    vars: dict[str, Any]
    budget: Budget = field(default_factory=Budget)

    def root(self, name: str | None) -> Any:
        if name is None:
            return self.body
        return getattr(self, name)


class _Wild:
    def __repr__(self) -> str:
        return "[*]"


WILD: Final = _Wild()
Step = str | int | _Wild


def _step(nodes: list[Any], step: Step) -> list[Any]:
    out: list[Any] = []
    for node in nodes:
        if isinstance(step, str):
            if isinstance(node, Mapping) and step in node:
                out.append(node[step])
        elif isinstance(step, int):
            if isinstance(node, list) and -len(node) <= step < len(node):
                out.append(node[step])
        elif isinstance(node, Mapping):
            out.extend(node.values())
        elif isinstance(node, list):
            out.extend(node)
    return out


@dataclass(frozen=True, slots=True)
class Selector:
    text: str
    root: str | None  # None: the event body
    singular: bool
    steps: tuple[Step, ...] | None  # the direct walk, when the path allows one
    expression: Any  # the jsonpath-ng expression
    resolve: Callable[[Context], Any] = field(repr=False, compare=False)
    """The value (singular; :data:`MISSING` when absent) or the list of matches."""
    cost: int = 1
    """The static weight of the selector (:func:`path_cost`)."""


def _root_getter(root: str | None) -> Callable[[Context], Any]:
    return (lambda ctx: ctx.body) if root is None else attrgetter(root)


def _singular(root: str | None, steps: tuple[Step, ...]) -> Callable[[Context], Any]:
    get_root = _root_getter(root)

    def resolve(ctx: Context) -> Any:
        node = get_root(ctx)
        for step in steps:
            if type(step) is str:
                # Bodies are plain dicts (orjson); other mappings take the slower check.
                if type(node) is dict or isinstance(node, Mapping):
                    node = node.get(step, MISSING)
                    if node is MISSING:
                        return MISSING
                else:
                    return MISSING
            elif type(node) is list and -len(node) <= step < len(node):  # type: ignore[operator]
                node = node[step]  # type: ignore[index]
            else:
                return MISSING
        return node

    return resolve


def _many(root: str | None, steps: tuple[Step, ...]) -> Callable[[Context], Any]:
    get_root = _root_getter(root)

    def resolve(ctx: Context) -> Any:
        nodes = [get_root(ctx)]
        budget = ctx.budget
        for step in steps:
            nodes = _step(nodes, step)
            budget.charge(len(nodes) + 1)
        return nodes

    return resolve


def _general(root: str | None, expression: Any) -> Callable[[Context], Any]:
    get_root = _root_getter(root)

    def resolve(ctx: Context) -> Any:
        document = get_root(ctx)
        try:
            return _find(expression, [document], document, ctx.budget)
        except (TypeError, ValueError, ArithmeticError, AttributeError, KeyError, IndexError):
            # A filter comparing values it cannot compare (a string with a number) matches nothing.
            return []

    return resolve


# The budgeted walk ---------------------------------------------------------------------------
# jsonpath-ng's semantics (1.17: order of matches, RFC 9535 filters), one node type at a
# time over plain values, charging each visited node. Filter expressions are decided as
# jsonpath-ng decides them (:func:`_matches`, its comparisons), their paths walked here too.

def _children(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, Mapping):
        return list(value.values())
    return []


def _find(node: Any, values: list[Any], document: Any, budget: Budget) -> list[Any]:
    kind = type(node)
    if kind is Root:
        budget.charge(len(values))
        return [document for _ in values]
    if kind is This:
        return values
    if kind is Child:
        return _find(node.right, _find(node.left, values, document, budget), document, budget)
    if kind is Descendants:
        found: list[Any] = []
        stack = _find(node.left, values, document, budget)[::-1]
        while stack:
            budget.charge(1)
            value = stack.pop()
            found.extend(_find(node.right, [value], document, budget))
            if isinstance(value, list | Mapping):
                stack.extend(reversed(_children(value)))
        return found
    out: list[Any] = []
    if kind is Wildcard or (kind is Fields and getattr(node, "_deprecated_wildcard_use", False)):
        for value in values:
            out.extend(_children(value))
    elif kind is Fields:
        for value in values:
            if isinstance(value, Mapping):
                out.extend(value[name] for name in node.fields if name in value)
    elif kind is Index:
        for value in values:
            if isinstance(value, list | tuple) and value:
                out.extend(value[i] for i in node.indices if -len(value) <= i < len(value))
    elif kind is Slice:
        for value in values:
            if isinstance(value, Mapping) and getattr(node, "_deprecated_wildcard_use", False):
                out.extend(value.values())
            elif isinstance(value, list | tuple) and node.step != 0:
                out.extend(value[i] for i in range(len(value))[node.start : node.end : node.step])
    elif kind is Filter:
        weight = 1 + len(node.expressions)
        for value in values:
            candidates = _children(value)
            budget.charge(weight * len(candidates))
            for candidate in candidates:
                # Each expression's paths are walked (and charged) here too: a filter's own
                # paths (`@.*.*...`, `$...`) may visit many nodes per candidate.
                if all(_matches(expression, candidate, document, budget) for expression in node.expressions):
                    out.append(candidate)
    else:  # _vet let through only the types above
        raise PathError(f"{kind.__name__} is not supported in a path")
    budget.charge(len(out) + 1)
    return out


def _matches(node: Any, candidate: Any, document: Any, budget: Budget) -> list[Any]:
    """What jsonpath-ng's ``find`` of a filter expression (``Expression``, ``&&``, ``||``) on
    ``candidate`` returns, as values, with its paths walked by :func:`_find` (so charged).
    Its truth decides the candidate; ``$`` is the root of the whole document (RFC 9535)."""
    if isinstance(node, And):
        return [candidate] if all(_matches(o, candidate, document, budget) for o in node.operands) else []
    if isinstance(node, Or):
        return [candidate] if any(_matches(o, candidate, document, budget) for o in node.operands) else []
    if not isinstance(node, Expression):
        return _find(node, [candidate], document, budget)
    found = _matches(node.target, candidate, document, budget)
    op: Any = node.op  # a comparison operator (`=~` is refused by _vet), "!" or None
    if op == "!":
        return [] if found else [candidate]
    if isinstance(node.value, JSONPath):
        values = _find(node.value, [candidate], document, budget)
        if not found or not values:
            # RFC 9535: two empty nodelists are equal, an empty one equals nothing else.
            return (found or [candidate]) if EQUALITY_ONLY_OPERATOR_MAP[op](not found and not values) else []
        budget.charge(len(found) * len(values))
        return [v for v in found if any(_compare(op, v, w) for w in values)]
    if not found:
        return [candidate] if op == "!=" else []
    if op is None:
        return found
    wanted = node.value
    result = []
    for value in found:
        if wanted is None:
            matched = EQUALITY_ONLY_OPERATOR_MAP[op](value is None)
        elif isinstance(value, bool) or isinstance(wanted, bool):
            matched = EQUALITY_ONLY_OPERATOR_MAP[op](value is wanted)
        else:
            matched = _compare(op, value, wanted)
        if matched:
            result.append(value)
    return result


# Static cost ---------------------------------------------------------------------------------
COST_STEP = 1  # a name or an index
COST_FAN_OUT = 5  # [*], a slice, several names or indices
COST_FILTER = 10  # a filter, plus COST_FAN_OUT per expression
COST_DESCENT = 50  # ..
DESCENT_FACTOR = 5  # each further .. multiplies the whole


def path_cost(expression: Any) -> int:
    """The static weight of a parsed path (docs/flows.md, "Evaluation budgets")."""
    total, descents = 1, 0
    stack = [expression]
    while stack:
        node = stack.pop()
        if isinstance(node, Descendants):
            descents += 1
            total += COST_DESCENT
        elif isinstance(node, Filter):
            total += COST_FILTER + COST_FAN_OUT * len(node.expressions)
            continue  # the expressions are paths without `..`, bounded by their candidate
        elif isinstance(node, Wildcard | Slice):
            total += COST_FAN_OUT
        elif isinstance(node, Fields):
            total += COST_FAN_OUT if len(node.fields) > 1 or "*" in node.fields else COST_STEP
        elif isinstance(node, Index):
            total += COST_FAN_OUT if len(node.indices) > 1 else COST_STEP
        stack.extend(c for part in ("left", "right") if (c := getattr(node, part, None)) is not None)
    return int(total * DESCENT_FACTOR ** max(0, descents - 1))


def _walk(expression: Any) -> list[Step] | None:
    """The steps of a path made only of single names, single indices and ``[*]``, else None."""
    if isinstance(expression, Root):
        return []
    if isinstance(expression, Child):
        left = _walk(expression.left)
        right = expression.right
        if left is None:
            return None
        if isinstance(right, Fields) and len(right.fields) == 1:
            return [*left, WILD if right.fields[0] == "*" else right.fields[0]]
        if isinstance(right, Index) and len(right.indices) == 1:
            return [*left, int(right.indices[0])]
        if isinstance(right, Wildcard):
            return [*left, WILD]
    return None


_PLAIN = (Root, This, Fields, Index, Slice, Wildcard, Child, Descendants)
_FILTER_OPERATORS = frozenset({"==", "=", "!=", "<", "<=", ">", ">=", "!"})


def _vet(node: Any, in_filter: bool = False) -> None:
    """Refuse everything but plain JSONPath (see the module doc)."""
    if isinstance(node, Filter):
        for expression in node.expressions:
            _vet(expression, True)
    elif isinstance(node, Expression):
        if node.op is not None and node.op not in _FILTER_OPERATORS:
            raise PathError(f"the filter operator {node.op} is not supported (use the regex operator)")
        _vet(node.target, True)
        if isinstance(node.value, JSONPath):
            _vet(node.value, True)
    elif isinstance(node, And | Or):
        for operand in node.operands:
            _vet(operand, True)
    elif isinstance(node, Descendants) and in_filter:
        raise PathError("`..` is not supported inside a filter (it would scan a subtree per candidate)")
    elif type(node) in _PLAIN:
        for part in ("left", "right"):
            if (child := getattr(node, part, None)) is not None:
                _vet(child, in_filter)
    else:
        raise PathError(f"{type(node).__name__} is not supported in a path; use plain JSONPath")


_PARSERS = threading.local()  # a PLY parser is reusable (3x faster than a new one) but not thread-safe


def _deprecated_syntax(text: str) -> str | None:
    """Syntax jsonpath-ng accepts with a DeprecationWarning and will drop, refused here.

    Checked on the tokens, not by turning warnings into errors: the warning filters are
    process-wide, and paths are compiled in worker threads (the flow engine's pool)."""
    tokens = list(ExtendedJsonPathLexer().tokenize(text))
    for index, token in enumerate(tokens):
        if token.type == "&":
            return "`&` is not supported; use `&&`"
        if token.type == "|":
            return "`|` (union) is not supported"
        after = tokens[index + 1] if index + 1 < len(tokens) else None
        if token.type == "FILTER_OP" and after is not None and after.type == "ID" and not getattr(after, "quoted", False):
            return f"quote the string {after.value!r} in a filter ('{after.value}')"
    return None


def _parse(text: str) -> Any:
    parser = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = _PARSERS.parser = ExtendedJsonPathParser()
    if (problem := _deprecated_syntax(text)) is not None:
        raise PathError(f"not a valid JSONPath: {problem}")
    return parser.parse(text)


def compile_path(text: str) -> Selector:
    """Parse ``text`` (see the module doc); raises :class:`PathError`."""
    if not isinstance(text, str):
        raise PathError("a path must be a string starting with $")
    return _compile(text)


@functools.lru_cache(maxsize=4096)
def _compile(text: str) -> Selector:
    """Cached by text: a :class:`Selector` holds no state of an evaluation."""
    text = text.strip()
    if len(text) > MAX_PATH_LENGTH:
        raise PathError(f"a path may be at most {MAX_PATH_LENGTH} characters")
    found = _ROOT.match(text)
    if found is None:
        raise PathError("a path must start with $ (the event body) or $event, $workspace, $settings, $vars")
    root, rest = found.group("root"), found.group("rest")
    if root is not None and root not in ROOTS:
        raise PathError(f"unknown root ${root}; use $ or one of " + ", ".join("$" + r for r in ROOTS))
    try:
        expression = _parse("$" + rest)
    except PathError:
        raise
    except (JsonPathParserError, JsonPathLexerError, ValueError, TypeError, Warning) as exc:
        raise PathError(f"not a valid JSONPath: {exc}") from exc
    _vet(expression)
    walk = _walk(expression)
    steps = tuple(walk) if walk is not None else None
    singular = steps is not None and WILD not in steps
    if steps is None:
        resolve = _general(root, expression)
    else:
        resolve = _singular(root, steps) if singular else _many(root, steps)
    return Selector(text=text, root=root, singular=singular, steps=steps, expression=expression, resolve=resolve,
                    cost=1 if singular else path_cost(expression))
