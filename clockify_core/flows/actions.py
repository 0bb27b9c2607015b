"""Flow actions: their JSON form, compiled (templates, `when`), and rendered into requests.

Rendering is shared by the executor and the dry-run, so a dry-run shows exactly the
request a run would send (with secrets masked). Nothing here performs I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final
from urllib.parse import quote, quote_plus

import httpx
import orjson

from clockify_core.flows.conditions import Limits, Node, Problem, compile_condition
from clockify_core.flows.network import (
    NetworkPolicy,
    RequestRefused,
    check_url_shape,
    literal_address,
)
from clockify_core.flows.paths import Context
from clockify_core.flows.secrets import SECRET_KEY, is_stored_secret
from clockify_core.flows.templates import (
    JsonTemplate,
    TemplateError,
    TextTemplate,
    compile_json,
    compile_text,
    header_value,
    header_value_problem,
    query_values,
)
from clockify_core.openapi import Operation, bundled_index
from clockify_core.tiers import ServiceProfile

ACTION_TYPES: Final = ("clockify_api", "http_request", "set_variable", "stop")
HTTP_METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
MASK: Final = "********"
# Headers the client sets itself; a flow may not.
RESERVED_HEADERS: Final = frozenset({"host", "content-length", "transfer-encoding", "connection", "x-addon-token"})
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_ACTION_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,20}$")
# Shorter credentials alone would mask ordinary words of a response.
MIN_CREDENTIALS = 6
_COMMON_KEYS = frozenset({"id", "type", "when"})
_KEYS: Mapping[str, frozenset[str]] = {
    "clockify_api": _COMMON_KEYS | {"operation_id", "path", "query", "body", "save_as"},
    "http_request": _COMMON_KEYS
    | {"method", "url", "headers", "body", "body_text", "timeout", "follow_redirects", "save_as"},
    "set_variable": _COMMON_KEYS | {"name", "value"},
    "stop": _COMMON_KEYS | {"reason"},
}


def available_types(profile: ServiceProfile) -> list[str]:
    """The action types a service's flows may use: outbound HTTP only where its tier allows it.

    The flow editor offers exactly these (ui/session.py); saving another known type is a tier problem.
    """
    return [kind for kind in ACTION_TYPES if kind != "http_request" or profile.http_actions]


@dataclass(frozen=True)
class Action:
    id: str
    type: str
    when: Node


@dataclass(frozen=True)
class ClockifyApiAction(Action):
    operation: Operation
    path: Mapping[str, TextTemplate]
    query: Mapping[str, TextTemplate]
    body: JsonTemplate | None
    save_as: str | None

    @property
    def writes(self) -> bool:
        scope = self.operation.required_scope or ""
        return self.operation.method != "GET" and not scope.endswith("_READ")


@dataclass(frozen=True)
class SecretHeader:
    """A header value kept encrypted at rest (``encrypted``), or typed in just now (``plain``)."""

    encrypted: str | None = None
    plain: str | None = None


@dataclass(frozen=True)
class HttpRequestAction(Action):
    method: str
    url: TextTemplate
    headers: Mapping[str, TextTemplate | SecretHeader]
    body: JsonTemplate | None
    body_text: TextTemplate | None
    timeout: float
    follow_redirects: bool
    save_as: str | None


@dataclass(frozen=True)
class SetVariableAction(Action):
    name: str
    value: JsonTemplate


@dataclass(frozen=True)
class StopAction(Action):
    reason: str | None


@dataclass
class ActionProblems:
    invalid: list[Problem] = field(default_factory=list)
    tier: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class ActionLimits:
    conditions: Limits
    default_timeout: float
    max_timeout: float


def compile_actions(
    raw: Any,
    *,
    profile: ServiceProfile,
    limits: ActionLimits,
    policy: NetworkPolicy,
    location: tuple[str | int, ...] = ("actions",),
) -> tuple[tuple[Action, ...], ActionProblems]:
    problems = ActionProblems()
    if not isinstance(raw, list):
        problems.invalid.append(Problem(location, "actions is a list"))
        return (), problems
    compiled: list[Action] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        loc = (*location, index)
        action = _compile_one(item, index, loc, profile, limits, policy, problems)
        if action is None:
            continue
        if action.id in seen:
            problems.invalid.append(Problem((*loc, "id"), f"action id {action.id!r} is used twice"))
        seen.add(action.id)
        compiled.append(action)
    return tuple(compiled), problems


def _compile_one(
    item: Any,
    index: int,
    loc: tuple[str | int, ...],
    profile: ServiceProfile,
    limits: ActionLimits,
    policy: NetworkPolicy,
    problems: ActionProblems,
) -> Action | None:
    bad = problems.invalid
    if not isinstance(item, dict):
        bad.append(Problem(loc, "an action is an object with a type"))
        return None
    kind = item.get("type")
    if kind not in ACTION_TYPES:
        bad.append(Problem((*loc, "type"), f"unknown action type {kind!r}; use one of " + ", ".join(ACTION_TYPES)))
        return None
    for key in sorted(set(item) - _KEYS[kind]):
        bad.append(Problem((*loc, key), f"unknown key {key!r} for a {kind} action"))
    action_id = item.get("id", f"step{index + 1}")
    if not isinstance(action_id, str) or not _ACTION_ID.match(action_id):
        bad.append(Problem((*loc, "id"), "an action id is 1-64 letters, digits, '_', '.' or '-'"))
        action_id = f"step{index + 1}"
    when, when_problems = compile_condition(item.get("when"), limits.conditions, (*loc, "when"))
    bad.extend(when_problems)
    common = {"id": action_id, "type": kind, "when": when}
    if kind not in available_types(profile):
        problems.tier.append(Problem((*loc, "type"), f"{kind} actions are not available on {profile.title}", "tier_policy"))
    try:
        if kind == "clockify_api":
            return _clockify_api(item, loc, profile, common, problems)
        if kind == "http_request":
            return _http_request(item, loc, limits, policy, common, problems)
        if kind == "set_variable":
            name = item.get("name")
            if not isinstance(name, str) or not _NAME.match(name):
                bad.append(Problem((*loc, "name"), "a variable name is a letter or _ then up to 63 letters, digits or _"))
                return None
            if "value" not in item:
                bad.append(Problem((*loc, "value"), "set_variable needs a value", "missing"))
                return None
            return SetVariableAction(**common, name=name, value=compile_json(item["value"], (*loc, "value")))
        reason = item.get("reason")
        if reason is not None and not isinstance(reason, str):
            bad.append(Problem((*loc, "reason"), "reason is text"))
        return StopAction(**common, reason=reason if isinstance(reason, str) else None)
    except TemplateError as exc:
        bad.append(Problem(exc.location or loc, str(exc), "bad_template"))
        return None


def _save_as(item: Mapping[str, Any], loc: tuple[str | int, ...], problems: ActionProblems) -> str | None:
    name = item.get("save_as")
    if name is not None and (not isinstance(name, str) or not _NAME.match(name)):
        problems.invalid.append(Problem((*loc, "save_as"), "save_as is a variable name"))
        return None
    return name


def _text_map(value: Any, loc: tuple[str | int, ...], problems: ActionProblems) -> dict[str, TextTemplate]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.invalid.append(Problem(loc, "expected an object of name → template"))
        return {}
    out: dict[str, TextTemplate] = {}
    for name, template in value.items():
        if not isinstance(template, str | int | float) or isinstance(template, bool):
            problems.invalid.append(Problem((*loc, name), "expected a string template"))
            continue
        out[name] = compile_text(str(template), (*loc, name))
    return out


def operation_allowed(profile: ServiceProfile, operation: Operation) -> bool:
    """The tier rule for `clockify_api`: the operation's scope, and a method the tier may
    use (a read-only POST such as a report counts as a read)."""
    if not profile.allows_scope(operation.required_scope):
        return False
    read_only = (operation.required_scope or "").endswith("_READ")
    return profile.allows_method(operation.method) or read_only


def _clockify_api(
    item: Mapping[str, Any],
    loc: tuple[str | int, ...],
    profile: ServiceProfile,
    common: dict[str, Any],
    problems: ActionProblems,
) -> Action | None:
    bad = problems.invalid
    operation_id = item.get("operation_id")
    if operation_id is None or (isinstance(operation_id, str) and not operation_id.strip()):
        bad.append(Problem((*loc, "operation_id"),
                           "operation_id is required: the operationId of the Clockify API call, e.g. getProjects",
                           "missing"))
        return None
    if not isinstance(operation_id, str):
        bad.append(Problem((*loc, "operation_id"), f"operation_id must be a string, not {type(operation_id).__name__}"))
        return None
    operation = bundled_index().by_operation_id(operation_id)
    if operation is None:
        bad.append(Problem((*loc, "operation_id"), f"unknown operationId {operation_id!r} (see the Clockify OpenAPI spec)",
                           "unknown_operation"))
        return None
    if not operation_allowed(profile, operation):
        need = operation.required_scope or "a scope this add-on does not declare"
        problems.tier.append(Problem(
            (*loc, "operation_id"),
            f"{operation.method} {operation.operation_id} needs {need}; {profile.title} may not call it",
            "tier_policy",
        ))
    path = _text_map(item.get("path"), (*loc, "path"), problems)
    declared = {p.name for p in operation.path_parameters}
    for name in path:
        if name == "workspaceId":
            bad.append(Problem((*loc, "path", name), "workspaceId is always the flow's own workspace"))
        elif name not in declared:
            bad.append(Problem((*loc, "path", name), f"{operation_id} has no path parameter {name!r}"))
    for name in sorted(declared - set(path) - {"workspaceId"}):
        bad.append(Problem((*loc, "path", name), f"{operation_id} needs the path parameter {name!r}", "missing"))
    query = _text_map(item.get("query"), (*loc, "query"), problems)
    known_query = {p.name for p in operation.query_parameters}
    for name in query:
        if name not in known_query:
            bad.append(Problem((*loc, "query", name), f"{operation_id} has no query parameter {name!r}"))
    body = None
    if "body" in item:
        if operation.request_body is None:
            bad.append(Problem((*loc, "body"), f"{operation_id} takes no request body"))
        else:
            body = compile_json(item["body"], (*loc, "body"))
    elif operation.request_body_required:
        bad.append(Problem((*loc, "body"), f"{operation_id} needs a request body", "missing"))
    return ClockifyApiAction(
        **common, operation=operation, path=path, query=query, body=body, save_as=_save_as(item, loc, problems)
    )


def _http_request(
    item: Mapping[str, Any],
    loc: tuple[str | int, ...],
    limits: ActionLimits,
    policy: NetworkPolicy,
    common: dict[str, Any],
    problems: ActionProblems,
) -> Action | None:
    bad = problems.invalid
    method = str(item.get("method", "POST")).upper()
    if method not in HTTP_METHODS:
        bad.append(Problem((*loc, "method"), "method is one of " + ", ".join(HTTP_METHODS)))
    url = item.get("url")
    if not isinstance(url, str) or not url:
        bad.append(Problem((*loc, "url"), "an http_request needs a url", "missing"))
        return None
    url_template = compile_text(url, (*loc, "url"))
    _check_static_url(url_template, (*loc, "url"), policy, problems)
    headers: dict[str, TextTemplate | SecretHeader] = {}
    raw_headers = item.get("headers") or {}
    if not isinstance(raw_headers, dict):
        bad.append(Problem((*loc, "headers"), "headers is an object of name → value or {\"secret\": value}"))
        raw_headers = {}
    for name, value in raw_headers.items():
        hloc = (*loc, "headers", name)
        if not _HEADER_NAME.match(name) or name.lower() in RESERVED_HEADERS:
            bad.append(Problem(hloc, f"{name!r} is not a header a flow may set"))
            continue
        if isinstance(value, dict):
            secret = _secret(value, hloc, problems)
            if secret is not None:
                headers[name] = secret
        elif isinstance(value, str):
            template = compile_text(value, hloc)
            literal = "".join(part for part in template.parts if isinstance(part, str))
            if problem := header_value_problem(literal):
                # The rendered value is checked again at run time (placeholders may bring them in).
                bad.append(Problem(hloc, f"a header value {problem}"))
                continue
            headers[name] = template
        else:
            bad.append(Problem(hloc, "a header value is a string or {\"secret\": value}"))
    if "body" in item and "body_text" in item:
        bad.append(Problem((*loc, "body_text"), "give body (JSON) or body_text, not both"))
    body = compile_json(item["body"], (*loc, "body")) if "body" in item else None
    body_text = item.get("body_text")
    text_template = compile_text(body_text, (*loc, "body_text")) if isinstance(body_text, str) else None
    if body_text is not None and text_template is None:
        bad.append(Problem((*loc, "body_text"), "body_text is a string template"))
    timeout = item.get("timeout", limits.default_timeout)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= limits.max_timeout:
        bad.append(Problem((*loc, "timeout"), f"timeout is a number of seconds above 0, at most {limits.max_timeout}"))
        timeout = limits.default_timeout
    follow = item.get("follow_redirects", False)
    if not isinstance(follow, bool):
        bad.append(Problem((*loc, "follow_redirects"), "follow_redirects is true or false"))
        follow = False
    return HttpRequestAction(
        **common, method=method, url=url_template, headers=headers, body=body, body_text=text_template,
        timeout=float(timeout), follow_redirects=follow, save_as=_save_as(item, loc, problems),
    )


def _secret(value: Mapping[str, Any], loc: tuple[str | int, ...], problems: ActionProblems) -> SecretHeader | None:
    if is_stored_secret(value):
        return SecretHeader(encrypted=value[SECRET_KEY])
    if set(value) == {"secret"} and isinstance(value["secret"], str) and value["secret"]:
        if problem := header_value_problem(value["secret"]):
            problems.invalid.append(Problem(loc, f"a secret header value {problem}"))
            return None
        return SecretHeader(plain=value["secret"])
    problems.invalid.append(Problem(loc, "a secret header is {\"secret\": \"value\"}"))
    return None


def _check_static_url(
    template: TextTemplate, loc: tuple[str | int, ...], policy: NetworkPolicy, problems: ActionProblems
) -> None:
    """Scheme and host must be literal text, so an event cannot choose where a request goes."""
    first = template.parts[0] if template.parts else ""
    prefix = first if isinstance(first, str) else ""
    try:
        url = httpx.URL(prefix)
        host, port = check_url_shape(url)
    except (httpx.InvalidURL, RequestRefused) as exc:
        detail = exc.detail if isinstance(exc, RequestRefused) else str(exc)
        problems.invalid.append(Problem(loc, f"the URL must start with a literal http(s)://host: {detail}", "bad_url"))
        return
    authority_end = prefix.find("/", prefix.find("//") + 2)
    if not template.is_literal and (authority_end < 0 and "?" not in prefix):
        problems.invalid.append(Problem(
            loc, "placeholders may only follow the host (after the first / or ?)", "bad_url"
        ))
        return
    address = literal_address(host)
    if address is not None:
        try:
            policy.check_address(host, address, port)
        except RequestRefused as exc:
            problems.invalid.append(Problem(loc, exc.detail, "ssrf"))


# Rendering -----------------------------------------------------------------------------------

@dataclass
class RenderedApiCall:
    method: str
    api: str
    path: str
    query: dict[str, str]
    body: Any
    entity_ids: list[str]  # entities a write targets (the loop guard remembers them)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "api": self.api, "path": self.path}
        if self.query:
            out["query"] = self.query
        if self.body is not None:
            out["body"] = self.body
        return out


def render_api_call(action: ClockifyApiAction, ctx: Context, workspace_id: str) -> RenderedApiCall:
    params = {name: template.text(ctx) for name, template in action.path.items()}
    params["workspaceId"] = workspace_id
    try:
        path = action.operation.format_path(params)
    except KeyError as exc:
        raise TemplateError(f"path parameter {exc.args[0]!r} rendered empty") from exc
    except ValueError as exc:
        raise TemplateError(f"rendered {exc}") from exc
    entity_ids = [v for k, v in params.items() if k != "workspaceId" and v] if action.writes else []
    body = action.body.render(ctx) if action.body is not None else None
    return RenderedApiCall(
        action.operation.method, action.operation.api, path, query_values(action.query, ctx), body, entity_ids
    )


@dataclass
class RenderedHttp:
    method: str
    url: str
    headers: dict[str, str]
    content: bytes | None
    secrets: list[str]  # plain secret values, masked wherever the request is shown
    secret_headers: frozenset[str] = frozenset()  # their header names, lower case

    def summary(self, max_body: int = 2000) -> dict[str, Any]:
        masked = {
            name: (MASK if name.lower() in self.secret_headers else mask(value, self.secrets))
            for name, value in self.headers.items()
        }
        out: dict[str, Any] = {"method": self.method, "url": mask(self.url, self.secrets), "headers": masked}
        if self.content is not None:
            out["body"] = mask(self.content[:max_body].decode("utf-8", "replace"), self.secrets)
        return out


def render_http(
    action: HttpRequestAction, ctx: Context, decrypt: Callable[[str], str] | None
) -> RenderedHttp:
    """The request to send; ``decrypt`` opens stored secrets (None: show them masked)."""
    headers: dict[str, str] = {}
    secrets: list[str] = []
    for name, value in action.headers.items():
        if isinstance(value, SecretHeader):
            if value.plain is not None:
                plain = value.plain
            elif decrypt is not None and value.encrypted is not None:
                plain = decrypt(value.encrypted)
                # Saved values were checked; one stored before that check could not be sent.
                if header_value_problem(plain):
                    raise TemplateError(f"the stored secret of header {name} is not a valid header value")
            else:
                plain = MASK
            headers[name] = plain
            secrets.append(plain)
        else:
            headers[name] = header_value(value, ctx, name)
    content: bytes | None = None
    if action.body is not None:
        content = orjson.dumps(action.body.render(ctx))
        headers.setdefault("Content-Type", "application/json")
    elif action.body_text is not None:
        content = action.body_text.text(ctx).encode()
        headers.setdefault("Content-Type", "text/plain; charset=utf-8")
    secret_names = frozenset(n.lower() for n, v in action.headers.items() if isinstance(v, SecretHeader))
    return RenderedHttp(action.method, action.url.text(ctx, encode=True), headers, content, secrets, secret_names)


def mask(text: str, secrets: list[str]) -> str:
    """``text`` with each secret, in each form it may take on the way (see :func:`secret_forms`), masked."""
    for secret in secrets:
        if secret and secret != MASK:
            for form in secret_forms(secret):
                text = text.replace(form, MASK)
    return text


@lru_cache(maxsize=1024)
def secret_forms(secret: str) -> tuple[str, ...]:
    """The spellings of a secret a request or an echoed answer may hold, longest first: as is,
    percent-encoded (a URL built from a variable), JSON-escaped, and the credentials of an
    ``Authorization``-style ``<scheme> <credentials>`` value on their own."""
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), orjson.dumps(secret).decode()[1:-1]}
    scheme, _, credentials = secret.partition(" ")
    if credentials and _SCHEME.match(scheme) and len(credentials) >= MIN_CREDENTIALS:
        forms |= set(secret_forms(credentials.strip()))
    return tuple(sorted((f for f in forms if f), key=len, reverse=True))
