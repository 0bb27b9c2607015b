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

Only plain JSONPath is accepted: names, indices, slices, ``[*]``, ``..``, unions and
filters comparing with ``== != < <= > >=``. Filter regexes (``=~``) and the extension
functions (``sub()``, arithmetic, ``sorted``...) are refused: a regex there would run
without the time limit the ``regex`` operator has.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Final

from jsonpath_ng import Child, Descendants, Fields, Index, Root, Slice, This
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext.filter import And, Expression, Filter, Or
from jsonpath_ng.ext.parser import parse as jsonpath_parse
from jsonpath_ng.jsonpath import JSONPath, Wildcard, _Intersect, _Union

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


@dataclass(frozen=True, slots=True)
class Context:
    """What selectors look at while one event is evaluated."""

    body: Any
    event: Mapping[str, Any]
    workspace: Mapping[str, Any]
    settings: Mapping[str, Any]
    vars: dict[str, Any]

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
        for step in steps:
            nodes = _step(nodes, step)
        return nodes

    return resolve


def _general(root: str | None, expression: Any) -> Callable[[Context], Any]:
    get_root = _root_getter(root)

    def resolve(ctx: Context) -> Any:
        try:
            return [match.value for match in expression.find(get_root(ctx))]
        except (TypeError, ValueError, ArithmeticError, AttributeError, KeyError, IndexError):
            # A filter comparing values it cannot compare (a string with a number) matches nothing.
            return []

    return resolve


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


_PLAIN = (Root, This, Fields, Index, Slice, Wildcard, Child, Descendants, _Union, _Intersect)
_FILTER_OPERATORS = frozenset({"==", "=", "!=", "<", "<=", ">", ">=", "!"})


def _vet(node: Any) -> None:
    """Refuse everything but plain JSONPath (see the module doc)."""
    if isinstance(node, Filter):
        for expression in node.expressions:
            _vet(expression)
    elif isinstance(node, Expression):
        if node.op is not None and node.op not in _FILTER_OPERATORS:
            raise PathError(f"the filter operator {node.op} is not supported (use the regex operator)")
        _vet(node.target)
        if isinstance(node.value, JSONPath):
            _vet(node.value)
    elif isinstance(node, And | Or):
        for operand in node.operands:
            _vet(operand)
    elif type(node) in _PLAIN:
        for part in ("left", "right"):
            if (child := getattr(node, part, None)) is not None:
                _vet(child)
    else:
        raise PathError(f"{type(node).__name__} is not supported in a path; use plain JSONPath")


def compile_path(text: str) -> Selector:
    """Parse ``text`` (see the module doc); raises :class:`PathError`."""
    if not isinstance(text, str):
        raise PathError("a path must be a string starting with $")
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
        with warnings.catch_warnings():
            # jsonpath-ng warns about syntax it will drop (`&` for `&&`); refuse it now.
            warnings.simplefilter("error")
            expression = jsonpath_parse("$" + rest)
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
    return Selector(text=text, root=root, singular=singular, steps=steps, expression=expression, resolve=resolve)
