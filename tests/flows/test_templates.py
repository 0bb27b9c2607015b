"""Templates: typed JSON values, spreads, text, escaping per context, and their properties."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clockify_core.flows.paths import Context
from clockify_core.flows.templates import (
    TemplateError,
    compile_json,
    compile_text,
    header_value,
    query_values,
    value_text,
)


def ctx(body: Any) -> Context:
    return Context(body, {"type": "NEW_TAG"}, {"id": "ws1"}, {"x": 1}, {"v": [1, 2]})


def test_json_values_keep_their_type() -> None:
    body = {"n": 3, "s": 'say "hi" {x}', "list": ["a", "b"], "none": None, "obj": {"k": True}}
    template = compile_json({
        "n": "{{ $.n }}", "text": "n={{ $.n }} s={{$.s}}", "list": ["{{ ...$.list }}", "c", "{{ ...$.none }}"],
        "nested": ["{{ $.list }}"], "missing": "{{ $.nope }}", "obj": "{{ $.obj }}", "ws": "{{ $workspace.id }}",
        "literal": "\\{{ not a placeholder }}", "{{ $event.type }}": "key", "num": 7, "many": "{{ $.list[*] }}",
    })
    assert template.render(ctx(body)) == {
        "n": 3, "text": 'n=3 s=say "hi" {x}', "list": ["a", "b", "c"], "nested": [["a", "b"]], "missing": None,
        "obj": {"k": True}, "ws": "ws1", "literal": "{{ not a placeholder }}", "NEW_TAG": "key", "num": 7,
        "many": ["a", "b"],
    }


@pytest.mark.parametrize(
    "source",
    ["{{ x }}", "{{ $.a", "a {{ ...$.x }}", "{{ $.a[ }}", "{{ $foo.x }}", "{{ {{ $.a }} }}"],
)
def test_bad_templates(source: str) -> None:
    with pytest.raises(TemplateError):
        compile_text(source)


def test_spread_only_inside_arrays() -> None:
    with pytest.raises(TemplateError):
        compile_json({"a": "{{ ...$.list }}"})
    assert compile_json(["{{ ...$.list }}"]).render(ctx({"list": "one"})) == ["one"]


def test_text_in_urls_headers_and_queries() -> None:
    context = ctx({"id": "a/b?c#d", "nl": "x\r\nInjected: 1", "empty": ""})
    assert compile_text("/x/{{ $.id }}/y").text(context, encode=True) == "/x/a%2Fb%3Fc%23d/y"
    with pytest.raises(TemplateError):
        header_value(compile_text("v={{ $.nl }}"), context)
    assert header_value(compile_text("id {{ $.id }}"), context) == "id a/b?c#d"
    assert query_values({"q": compile_text("{{ $.id }}"), "e": compile_text("{{ $.empty }}")}, context) == {
        "q": "a/b?c#d"
    }
    assert [value_text(v) for v in (None, True, 1.5, [1, "a"], {"k": None})] == ["", "true", "1.5", '[1,"a"]',
                                                                                  '{"k":null}']


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**9, 10**9) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=15,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_a_template_without_placeholders_renders_to_itself(value: Any) -> None:
    def escape(v: Any) -> Any:
        if isinstance(v, str):
            return v.replace("{{", "\\{{")
        if isinstance(v, list):
            return [escape(x) for x in v]
        if isinstance(v, dict):
            return {k.replace("{{", "\\{{"): escape(x) for k, x in v.items()}
        return v

    assert compile_json(escape(value)).render(ctx({})) == value


@settings(max_examples=300, deadline=None)
@given(json_values, st.text(min_size=1, max_size=20))
def test_placeholders_never_change_the_shape(value: Any, prefix: str) -> None:
    prefix = prefix.replace("{", "(").replace("\\", "/")
    context = ctx({"v": value})
    # An exact placeholder is the value itself; embedded, it is the value's text in one string.
    assert compile_json({"k": "{{ $.v }}"}).render(context) == {"k": value}
    rendered = compile_json({"k": prefix + "{{ $.v }}"}).render(context)
    assert rendered == {"k": prefix + value_text(value)}
    assert orjson.loads(orjson.dumps(rendered)) == rendered
    # In a URL the value's text is one percent-encoded unit: no '/', '?', '#' or '&' survives.
    url = compile_text("/p/{{ $.v }}").text(context, encode=True)
    assert url.count("/") == 2
    assert not set("?#&") & set(url[3:])
    assert unquote(url[3:]) == value_text(value)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_header_values_never_carry_line_breaks(text: str) -> None:
    unsendable = any(ord(c) < 32 and c != "\t" for c in text) or "\x7f" in text or not text.isascii()
    if unsendable:
        with pytest.raises(TemplateError, match="X-H"):
            header_value(compile_text("{{ $.h }}"), ctx({"h": text}), "X-H")
        return
    rendered = header_value(compile_text("{{ $.h }}"), ctx({"h": text}), "X-H")
    assert "\r" not in rendered
    assert "\n" not in rendered
    assert rendered == text
    # Whatever passes is a value the HTTP client can encode (it raises on non-ASCII).
    assert httpx.Headers({"X-H": rendered})["X-H"] == rendered
