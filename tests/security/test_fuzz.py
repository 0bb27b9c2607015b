"""Schemathesis against each service's own OpenAPI: every route, valid and invalid credentials.

What is fuzzed: every operation of each service's ``app.openapi()``, plus the routes the
OpenAPI leaves out (``UNDOCUMENTED``, added to the schema as plain operations so they are
fuzzed too) and a JSON body of any shape for the two webhook receivers, which read their raw
body themselves (``RAW_BODY``). Each operation gets two sets of cases:

* schemathesis' coverage phase: boundary values, wrong types, missing and unknown parameters,
  malformed content types, methods the route does not have;
* Hypothesis-generated cases, positive (fit the schema) and negative (do not).

Path ids are replaced by ones that exist in the tenant (its workspace, a flow, a run, a
custom source, a job) in half of the generated cases and in the coverage cases not aimed at
the path, so the fuzz gets past the 404s. Each case is sent three times (``VARIANTS``):

* ``valid``: the route's real credential: an owner's user token, the operator key, a
  lifecycle or webhook token signed by the simulator's Clockify key, a correct HMAC signature;
* ``forged``: the same credential signed by a stranger's key or a wrong secret (even cases),
  or garbage (odd cases);
* ``absent``: no credential at all.

Public routes (health, manifest, metrics, docs, assets) take no credential and are sent once.

What is checked, for every response: never a 500 (an exception escaping the app counts as
one), no other 5xx than 503, and every error (status >= 400) is an RFC 9457 problem:
``application/problem+json`` with ``type``, ``title`` and a ``status`` equal to the HTTP status.
The one exception is the sidebar page, whose refusals are HTML pages by design (``HTML_ERRORS``).
And the valid credential of every route is accepted at least once (not a 401), so the fuzz
reaches past authentication.

Each service gets its own simulator and database (the fuzz creates, changes and deletes
things); lifecycle routes go last (a valid ``deleted`` uninstalls the tenant). Generation is
deterministic: ``derandomize``, no example database, and none of the constants Hypothesis
would collect from whatever project modules happen to be loaded. Its caches go to a temporary
directory, so the test leaves no files behind.
"""
from __future__ import annotations

import copy
import json
import logging
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeAlias

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir, storage_directory
from hypothesis.internal.conjecture import providers
from hypothesis.internal.constants_ast import Constants
from schemathesis import APIOperation, BaseSchema, Case, GenerationMode
from schemathesis.generation.meta import CoveragePhaseData
from sqlalchemy import select

from clockify_core.errors import PROBLEM_CONTENT_TYPE
from clockify_core.jobs.models import Job
from clockify_core.security.hmac import signed_headers
from clockify_core.security.signing import KeyPair, TokenSigner
from clockify_core.simulator.testing import in_process_simulator
from clockify_core.testing.loopback import LoopbackServer
from clockify_core.ui.router import assets
from tests.security.support import (
    OPERATOR_KEY,
    SERVICES,
    ServiceUnderTest,
    Stack,
    api_routes,
    build_service,
    populate_tenant,
    tiny_config,
)

pytestmark = pytest.mark.postgres

EXAMPLES = 30  # per operation, positive and negative together
GENERATION = settings(
    max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
    phases=[Phase.generate], suppress_health_check=list(HealthCheck),
)

Route = tuple[str, str]  # (method, path template)
Operation: TypeAlias = "APIOperation[Any, Any, Any, Any]"

# Routes the apps serve but leave out of their OpenAPI: added to the fuzzed schema as plain
# operations (their path parameters as strings). A new undocumented route fails
# test_every_route_is_fuzzed until it is listed here.
UNDOCUMENTED: dict[Route, str] = {
    ("GET", "/docs"): "FastAPI's Swagger UI page",
    ("GET", "/docs/oauth2-redirect"): "FastAPI's Swagger UI OAuth2 helper page",
    ("GET", "/openapi.json"): "the OpenAPI document itself",
    ("GET", "/ui/assets/{name}"): "the sidebar's static files (include_in_schema=False)",
}
# Read their body as bytes, so the OpenAPI declares none: fuzzed with a JSON body of any shape.
RAW_BODY: set[Route] = {("POST", "/webhooks/{slug}"), ("POST", "/webhooks/custom/{source_id}")}
# Exempt from the problem+json check (still never a 500): an error may be an HTML page instead.
HTML_ERRORS: dict[Route, str] = {
    ("GET", "/ui"): "the sidebar page Clockify shows in an iframe: a refused token gets an HTML error page",
}

VARIANTS = ("valid", "forged", "absent")
# Every header and query parameter that carries a credential; a variant sets its own.
CREDENTIAL_HEADERS = frozenset({
    "x-addon-token", "authorization", "x-api-key", "x-addon-lifecycle-token", "clockify-signature",
    "clockify-webhook-event-type", "x-signature", "x-timestamp",
})
CREDENTIAL_QUERY = frozenset({"auth_token"})
GARBAGE = "garbage.not-a-token"


@cache
def stranger() -> KeyPair:
    """A key pair Clockify never used: what it signs is forged."""
    return KeyPair.generate()


@pytest.fixture(autouse=True)
def hypothesis_isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Hypothesis keeps its caches (constants, unicode tables) in a temporary directory, not in
    the repo, and leaves out the constants it would collect from the project's loaded modules:
    which modules are loaded depends on what ran before in this process (other test files on
    the same xdist worker), and derandomized cases must not."""
    monkeypatch.setattr(providers, "_get_local_constants", Constants)
    providers.CONSTANTS_CACHE.cache.clear()
    previous = storage_directory(intent_to_write=False).home_directory
    with tempfile.TemporaryDirectory(prefix="fuzz-hypothesis-") as scratch:
        set_hypothesis_home_dir(scratch)
        try:
            yield
        finally:
            set_hypothesis_home_dir(previous)
            providers.CONSTANTS_CACHE.cache.clear()


# The schema ------------------------------------------------------------------------------------

def documented_routes(app: FastAPI) -> set[Route]:
    return {(method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item}


def fuzzed_schema(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI with the undocumented routes and the raw bodies added."""
    spec = copy.deepcopy(app.openapi())
    served = api_routes(app)
    for method, path in UNDOCUMENTED.keys() & served:
        parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                      for name in re.findall(r"\{(\w+)\}", path)]
        spec["paths"].setdefault(path, {})[method.lower()] = {
            "parameters": parameters, "responses": {"200": {"description": "OK"}}}
    for method, path in RAW_BODY & served:
        spec["paths"][path][method.lower()]["requestBody"] = {"content": {"application/json": {"schema": {}}}}
    return spec


def operation_slice(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    """An OpenAPI document of one operation and the components it refers to: what its cases
    depend on, so an operation that several services share is generated once."""
    operation = spec["paths"][path][method]
    components: dict[str, Any] = {}
    todo: list[Any] = [operation]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/"):
                kind, name = ref.removeprefix("#/components/").split("/")
                if name not in components.setdefault(kind, {}):
                    components[kind][name] = spec["components"][kind][name]
                    todo.append(components[kind][name])
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return {"openapi": spec["openapi"], "info": spec["info"], "paths": {path: {method: operation}},
            "components": components}


@dataclass(frozen=True)
class Planned:
    """A case to send, and which of its path parameters to replace by ids that exist."""

    case: Case[Any]
    existing_ids: frozenset[str]


def path_parameters(operation: Operation) -> frozenset[str]:
    return frozenset(re.findall(r"\{(\w+)\}", operation.path))


def coverage_cases(schema: BaseSchema, operation: Operation) -> list[Planned]:
    """Schemathesis' coverage phase: boundary values, wrong types, missing and unexpected
    parameters, other methods. A case aimed at a path parameter keeps it; one trying another
    method keeps made-up ids (a DELETE aimed at a GET route must not remove what later cases need)."""
    names = path_parameters(operation)
    found = []
    for case in schema.iter_coverage_cases(
            operation, generation_modes=list(GenerationMode), generation_config=schema.config.generation):
        data = case.meta.phase.data if case.meta else None
        aimed = {data.parameter} if isinstance(data, CoveragePhaseData) and data.parameter else set()
        same_method = case.method.upper() == operation.method.upper()
        found.append(Planned(case, names - aimed if same_method else frozenset()))
    return found


def fuzzed_cases(operation: Operation) -> list[Planned]:
    """Hypothesis-generated cases, positive and negative (where nothing can be negated,
    schemathesis rejects the negative ones and the positive remain); half with existing ids."""
    names = path_parameters(operation)
    case = st.one_of(*(operation.as_strategy(generation_mode=mode) for mode in GenerationMode))
    found: list[Planned] = []

    @GENERATION
    @given(case, st.booleans())
    def collect(case: Case[Any], existing_ids: bool) -> None:
        found.append(Planned(case, names if existing_ids else frozenset()))

    collect()
    return found


_planned: dict[str, list[Planned]] = {}


def cases_for(spec: dict[str, Any], method: str, path: str) -> list[Planned]:
    """The coverage and fuzzed cases of one operation, generated once per distinct slice."""
    document = operation_slice(spec, method, path)
    key = json.dumps(document, sort_keys=True)
    if key not in _planned:
        schema = schemathesis.openapi.from_dict(document)
        operation = schema[path][method.upper()]
        _planned[key] = coverage_cases(schema, operation) + fuzzed_cases(operation)
    return _planned[key]


def operations(spec: dict[str, Any]) -> list[Route]:
    """Every operation of ``spec``; lifecycle calls last (a valid ``deleted`` uninstalls the
    tenant), deletions just before them."""
    def rank(route: Route) -> tuple[int, str, str]:
        method, path = route
        return (2 if path.startswith("/lifecycle/") else 1 if method == "DELETE" else 0), path, method

    return sorted(((method.upper(), path) for path, item in spec["paths"].items() for method in item), key=rank)


# The world and its credentials -----------------------------------------------------------------

@dataclass
class Target:
    """Tenant A of one service, with the ids that exist in it and the tokens of each variant
    (minted once: loading an RSA key costs milliseconds)."""

    service: ServiceUnderTest
    job_id: int
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        a = self.service.a
        inst, urls = a.installation, a.sim.sim.urls
        owner = a.sim.sim.workspace(a.workspace_id).owner_id
        for variant, signer in (("valid", inst.signer), ("forged", TokenSigner(stranger().private_pem, inst.addon_key))):
            self.tokens["user", variant] = signer.user_token(
                a.workspace_id, a.addon_id, user_id=owner, backend_url=urls.backend, reports_url=urls.reports,
                workspace_role="OWNER")
            self.tokens["lifecycle", variant] = signer.lifecycle_token(a.workspace_id, a.addon_id, ttl_seconds=3600)
            self.tokens["webhook", variant] = signer.webhook_token(a.workspace_id, a.addon_id)

    def known_ids(self) -> dict[str, str]:
        a = self.service.a
        ids = {"workspace_id": a.workspace_id, "flow_id": a.flow_id, "run_id": str(a.run_id),
               "source_id": a.source_id, "job_id": str(self.job_id), "slug": "new-time-entry",
               "operation_id": "getTags", "name": min(assets())}
        return {name: value for name, value in ids.items() if value}

    def credentials(self, path: str, variant: str, body: bytes, index: int) -> tuple[dict[str, str], dict[str, str]]:
        """Headers and query parameters of ``variant`` for a request to ``path``."""
        if variant == "absent":
            return {}, {}
        a, forged = self.service.a, variant == "forged"
        garbage = forged and index % 2 == 1

        def token(kind: str) -> str:
            return GARBAGE if garbage else self.tokens[kind, variant]

        if path.startswith("/api/operator/"):
            return {"X-API-Key": "wrong-" + OPERATOR_KEY if forged else OPERATOR_KEY}, {}
        if path == "/ui":
            return {}, {"auth_token": token("user")}
        if path.startswith("/api/"):
            return {"X-Addon-Token": token("user")}, {}
        if path.startswith("/lifecycle/"):
            return {"X-Addon-Lifecycle-Token": token("lifecycle")}, {}
        if path.startswith("/webhooks/custom/"):
            secret = "a-wrong-secret-0123456789" if forged else a.source_secret or "no-custom-source-here"
            return signed_headers(secret, body, int(time.time())), {}
        if path.startswith("/webhooks/"):
            # The route of the known slug (new-time-entry); another slug is not served (404).
            hook = next(h for h in a.installation.webhooks if h.event == "NEW_TIME_ENTRY")
            return {"Clockify-Signature": token("webhook") if forged else hook.token,
                    "Clockify-Webhook-Event-Type": hook.event}, {}
        raise AssertionError(f"{path} takes no credential")


def takes_credentials(path: str) -> bool:
    return path.startswith(("/api/", "/lifecycle/", "/webhooks/")) or path == "/ui"


# Sending and checking --------------------------------------------------------------------------

@dataclass
class Sent:
    method: str
    url: str
    params: dict[str, Any]
    headers: dict[str, str]
    body: bytes | None

    def describe(self) -> str:
        shown = {k: (v[:24] + "…" if len(v) > 24 else v) for k, v in self.headers.items()}
        body = (self.body or b"")[:300].decode("utf-8", "replace")
        return f"{self.method} {self.url} params={self.params} headers={shown} body={body!r}"


def request_of(planned: Planned, target: Target, variant: str, index: int) -> Sent:
    case = planned.case
    known = {name: value for name, value in target.known_ids().items() if name in planned.existing_ids}
    if known:
        case = case.derive()  # the cases are shared between services: change a copy
        case.path_parameters = {**case.path_parameters, **known}
    kwargs = case.as_transport_kwargs(base_url=str(target.service.client.base_url))
    assert not kwargs.get("cookies"), kwargs  # no operation declares a cookie
    if "json" in kwargs:
        body: bytes | None = json.dumps(kwargs["json"]).encode()
    else:
        data = kwargs.get("data")
        assert data is None or isinstance(data, bytes | str), kwargs
        body = data.encode() if isinstance(data, str) else data
    headers = {k: str(v) for k, v in kwargs["headers"].items() if k.lower() not in CREDENTIAL_HEADERS}
    params = {k: v for k, v in (kwargs.get("params") or {}).items() if k not in CREDENTIAL_QUERY}
    extra_headers, extra_params = target.credentials(case.path, variant, body or b"", index)
    return Sent(case.method.upper(), kwargs["url"], {**params, **extra_params}, {**headers, **extra_headers}, body)


def complaint(route: Route, response: httpx.Response) -> str | None:
    """What is wrong with ``response``, or None."""
    status = response.status_code
    if status >= 500 and status != 503:
        return f"status {status}"
    if status < 400:
        return None
    content_type = response.headers.get("content-type", "")
    if route in HTML_ERRORS and content_type.startswith("text/html"):
        return None
    if not content_type.startswith(PROBLEM_CONTENT_TYPE):
        return f"{status} with content-type {content_type!r}"
    try:
        body = response.json()
    except ValueError:
        return f"{status} problem body is not JSON"
    if not isinstance(body, dict) or not {"type", "title", "status"} <= body.keys():
        return f"{status} problem body lacks type/title/status"
    if body["status"] != status:
        return f"{status} problem body says status {body['status']!r}"
    return None


@dataclass
class Report:
    sent: int = 0
    routes: set[Route] = field(default_factory=set)
    accepted: set[Route] = field(default_factory=set)  # routes that took the valid credential
    failures: dict[tuple[Route, str, str], list[str]] = field(default_factory=dict)

    def fail(self, route: Route, variant: str, what: str, sent: Sent, answer: str) -> None:
        self.failures.setdefault((route, variant, what), []).append(f"{sent.describe()}\n    -> {answer[:500]}")

    def summary(self) -> str:
        lines = [f"{len(self.failures)} kinds of failure in {self.sent} requests:"]
        for (route, variant, what), examples in sorted(self.failures.items()):
            lines.append(f"{route[0]} {route[1]} [{variant}] {what} ({len(examples)}x), e.g.\n  {examples[0]}")
        return "\n".join(lines)


async def fuzz_route(target: Target, route: Route, cases: list[Planned], report: Report) -> None:
    variants = VARIANTS if takes_credentials(route[1]) else ("absent",)
    client = target.service.client
    for index, planned in enumerate(cases):
        for variant in variants:
            sent = request_of(planned, target, variant, index)
            report.sent += 1
            try:
                response = await client.request(sent.method, sent.url, params=sent.params, headers=sent.headers,
                                                content=sent.body)
            except Exception as exc:  # the app let an exception escape: Starlette answered 500
                report.fail(route, variant, f"raised {type(exc).__name__}", sent, repr(exc))
                continue
            if variant == "valid" and response.status_code != 401:
                report.accepted.add(route)
            what = complaint(route, response)
            if what:
                report.fail(route, variant, what, sent, response.text)
    report.routes.add(route)


# The tests -------------------------------------------------------------------------------------

def _app(name: str) -> FastAPI:
    create_app, settings_cls = SERVICES[name]
    return create_app(settings_cls(), configure_logs=False)


@pytest.mark.parametrize("service_name", list(SERVICES))
def test_every_route_is_fuzzed(service_name: str) -> None:
    """The OpenAPI plus the listed undocumented routes are exactly what the app serves."""
    app = _app(service_name)
    documented, served = documented_routes(app), api_routes(app)
    assert not documented & UNDOCUMENTED.keys(), "now documented: drop from UNDOCUMENTED"
    assert documented | UNDOCUMENTED.keys() == served, sorted(served ^ (documented | UNDOCUMENTED.keys()))
    assert HTML_ERRORS.keys() <= documented


@pytest.mark.parametrize("service_name", list(SERVICES))
async def test_fuzz_never_500_and_errors_are_problems(service_name: str, pg_url: str, recorder: LoopbackServer) -> None:
    async with AsyncExitStack() as exits:
        sim = await exits.enter_async_context(in_process_simulator(tiny_config()))
        service = await build_service(exits, sim, service_name, pg_url, recorder)
        await populate_tenant(Stack(sim, {service_name: service}, recorder), service)
        async with service.harness.runtime.sessions() as session:
            job_id = await session.scalar(select(Job.id).order_by(Job.id).limit(1))
        target = Target(service, job_id or 1)

        spec, report = fuzzed_schema(service.app), Report()
        for method, path in operations(spec):
            await fuzz_route(target, (method, path), cases_for(spec, method.lower(), path), report)

    logging.getLogger(__name__).warning(
        "fuzz %s: %d requests over %d routes, %d routes past authentication, %d kinds of failure",
        service_name, report.sent, len(report.routes), len(report.accepted), len(report.failures))
    assert report.routes == api_routes(service.app), sorted(report.routes ^ api_routes(service.app))
    assert not report.failures, report.summary()
    credentialed = {route for route in report.routes if takes_credentials(route[1])}
    assert credentialed <= report.accepted, sorted(credentialed - report.accepted)
