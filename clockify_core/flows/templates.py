"""Templates: ``{{ $.path }}`` placeholders in action fields, resolved by JSONPath.

Escaping depends on where a template is used, so a value from an event can never
change the shape of what is sent (docs/flows.md has the table):

* **JSON bodies** are rendered as values, never as text. A string that is exactly one
  placeholder becomes the value itself (number, list, null...); an array element
  ``"{{ ...$.tagIds }}"`` spreads a list into the array; placeholders inside longer
  strings are replaced by their text. JSON is serialised afterwards, so quotes and
  braces in values are escaped by the serialiser.
* **Path and URL parts** are percent-encoded, ``/`` included: a value stays inside
  its path segment or query value.
* **Query parameters** are plain text; the HTTP client encodes them.
* **Headers** are plain text; a value with CR, LF or another control character fails
  the action instead of starting a new header, and so does one with a non-ASCII
  character (``José``): HTTP header values are ASCII, and the HTTP client cannot send
  anything else. Put such text in the body.

The text of a value: strings as they are, ``true``/``false``, numbers as JSON, null or a
missing value as the empty string, lists and objects as compact JSON. ``\\{{`` writes a
literal ``{{``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import orjson

from clockify_core.flows.paths import MISSING, Context, PathError, Selector, compile_path

_PLACEHOLDER = re.compile(r"(?<!\\)\{\{\s*(\.\.\.)?\s*(\$[^{}]*?)\s*\}\}")
_ESCAPED = "\\{{"
# Control characters a header value may not hold (tab is allowed): CR/LF would inject headers.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
NON_ASCII = re.compile(r"[^\x00-\x7f]")
MAX_DEPTH = 32


class TemplateError(ValueError):
    """A template that cannot be compiled or a rendered value that cannot be used."""

    def __init__(self, message: str, location: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.location = location


@dataclass(frozen=True, slots=True)
class TextTemplate:
    """A string with placeholders; ``parts`` alternate literal text and selectors."""

    source: str
    parts: tuple[str | Selector, ...]
    exact: Selector | None  # the whole string is one placeholder
    spread: bool  # the whole string is one "..." placeholder

    @property
    def is_literal(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)

    def value(self, ctx: Context) -> Any:
        """The typed value of an exact placeholder, else the rendered text."""
        if self.exact is not None:
            found = self.exact.resolve(ctx)
            return None if found is MISSING else found
        return self.text(ctx)

    def text(self, ctx: Context, encode: bool = False) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                text = value_text(part.resolve(ctx))
                out.append(quote(text, safe="") if encode else text)
        return "".join(out)


def value_text(value: Any) -> str:
    if value is MISSING or value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return orjson.dumps(value).decode()


def compile_text(source: str, location: tuple[str | int, ...] = ()) -> TextTemplate:
    if not isinstance(source, str):
        raise TemplateError("expected a string", location)
    parts: list[str | Selector] = []
    position = 0
    spread = False
    exact: Selector | None = None
    for found in _PLACEHOLDER.finditer(source):
        parts.append(_literal(source[position : found.start()], location))
        try:
            selector = compile_path(found.group(2))
        except PathError as exc:
            raise TemplateError(f"placeholder {found.group(0)!r}: {exc}", location) from exc
        if found.group(1):
            if found.span() != (0, len(source)):
                raise TemplateError("a spread {{ ...$.path }} must be a whole array element", location)
            spread = True
        if found.span() == (0, len(source)):
            exact = selector
        parts.append(selector)
        position = found.end()
    parts.append(_literal(source[position:], location))
    return TextTemplate(source, tuple(p for p in parts if p != ""), exact, spread)


def _literal(chunk: str, location: tuple[str | int, ...]) -> str:
    if "{{" in chunk.replace(_ESCAPED, ""):
        raise TemplateError(
            "malformed placeholder: write {{ $.path }} (a path starts with $), or \\{{ for a literal {{", location
        )
    return chunk.replace(_ESCAPED, "{{")


# JSON templates ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class JsonTemplate:
    """A JSON value whose strings (and object keys) may hold placeholders."""

    node: Any  # literals, TextTemplate, _Array, _Object

    def render(self, ctx: Context) -> Any:
        return _render(self.node, ctx)


@dataclass(frozen=True, slots=True)
class _Array:
    items: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _Object:
    items: tuple[tuple[TextTemplate | str, Any], ...]


def compile_json(value: Any, location: tuple[str | int, ...] = ()) -> JsonTemplate:
    return JsonTemplate(_compile_json(value, location, 0, in_array=False))


def _compile_json(value: Any, loc: tuple[str | int, ...], depth: int, *, in_array: bool) -> Any:
    if depth > MAX_DEPTH:
        raise TemplateError(f"a template may nest at most {MAX_DEPTH} levels", loc)
    if isinstance(value, str):
        template = compile_text(value, loc)
        if template.spread and not in_array:
            raise TemplateError("a spread {{ ...$.path }} is only allowed as an array element", loc)
        return value.replace(_ESCAPED, "{{") if template.is_literal else template
    if isinstance(value, list):
        return _Array(tuple(_compile_json(v, (*loc, i), depth + 1, in_array=True) for i, v in enumerate(value)))
    if isinstance(value, dict):
        items: list[tuple[TextTemplate | str, Any]] = []
        for key, item in value.items():
            key_template = compile_text(str(key), (*loc, str(key)))
            if key_template.spread:
                raise TemplateError("an object key cannot spread", (*loc, str(key)))
            items.append(
                (str(key).replace(_ESCAPED, "{{") if key_template.is_literal else key_template,
                 _compile_json(item, (*loc, str(key)), depth + 1, in_array=False))
            )
        return _Object(tuple(items))
    if value is None or isinstance(value, bool | int | float):
        return value
    raise TemplateError(f"unsupported JSON value {type(value).__name__}", loc)


def _render(node: Any, ctx: Context) -> Any:
    if isinstance(node, TextTemplate):
        return node.value(ctx)
    if isinstance(node, _Array):
        out: list[Any] = []
        for item in node.items:
            if isinstance(item, TextTemplate) and item.spread:
                found = item.exact.resolve(ctx) if item.exact is not None else MISSING
                if isinstance(found, list):
                    out.extend(found)
                elif found is not MISSING and found is not None:
                    out.append(found)
            else:
                out.append(_render(item, ctx))
        return out
    if isinstance(node, _Object):
        rendered: dict[str, Any] = {}
        for key, item in node.items:
            name = key if isinstance(key, str) else key.text(ctx)
            rendered[name] = _render(item, ctx)
        return rendered
    return node


# Headers -------------------------------------------------------------------------------------

def header_value_problem(text: str) -> str | None:
    """Why ``text`` cannot be sent as a header value, or None."""
    if CONTROL_CHARACTERS.search(text):
        return "contains a control character (CR, LF...)"
    if NON_ASCII.search(text):
        return "contains a non-ASCII character (header values are ASCII; put such text in the body)"
    return None


def header_value(template: TextTemplate, ctx: Context, name: str = "") -> str:
    """Rendered header text; control characters (CR/LF injection) and non-ASCII text are refused."""
    text = template.text(ctx)
    if problem := header_value_problem(text):
        raise TemplateError(f"the rendered value of header {name or '(unnamed)'} {problem}")
    return text


def query_values(templates: Mapping[str, TextTemplate], ctx: Context) -> dict[str, str]:
    """Rendered query parameters; one that renders empty is left out."""
    out: dict[str, str] = {}
    for name, template in templates.items():
        text = template.text(ctx)
        if text != "":
            out[name] = text
    return out


ESCAPED_OPEN: Final = _ESCAPED
