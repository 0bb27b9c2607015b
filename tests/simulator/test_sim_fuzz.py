"""Malformed requests to the simulator's Clockify API get a 4xx in Clockify's error shape, never a 500.

The regression cases are the malformed bodies that once crashed a handler. The fuzz sends
schemathesis cases for every API operation the simulator serves (not ``/__sim``, the test
control surface): parameters from the simulator's own OpenAPI, request bodies from the
Clockify spec of the same ``operationId`` (so fields get wrong types, not just unknown
keys). Half the cases use ids that exist (the owner, a project, a tag...) to get past the
404s; the owner's API key passes authentication. A crash is a 500 *response*: the in-process
transport answers as a server would (also tested here).
"""

from __future__ import annotations

import json
import logging
import re
from functools import cache
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from clockify_core.errors import PROBLEM_CONTENT_TYPE
from clockify_core.openapi.index import bundled_index, load_spec
from clockify_core.simulator.app import create_simulator_app
from clockify_core.simulator.config import RateLimitSettings
from clockify_core.simulator.faults import SimulatorTransport
from clockify_core.simulator.testing import InProcessSimulator, in_process_simulator, small_config
from tests.security.test_fuzz import hypothesis_isolated, operation_slice  # noqa: F401 - an autouse fixture

EXAMPLES = 8  # per operation: the fuzz stays a few seconds
GENERATION = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                      phases=[Phase.generate], suppress_health_check=list(HealthCheck))
API_PREFIXES = ("/api/", "/reports/")


def assert_clockify_error(response: httpx.Response, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_CONTENT_TYPE)
    body = response.json()
    # Clockify's own fields beside the problem ones (docs/clockify.md#errors).
    assert isinstance(body["message"], str)
    assert body["message"]
    assert isinstance(body["code"], int)
    assert body["status"] == status


async def test_malformed_dates_and_report_filters_are_400(simulator: InProcessSimulator) -> None:
    ws = simulator.workspace
    owner = simulator.owner_client()
    base = f"/api/v1/workspaces/{ws.id}"
    report = f"/reports/v1/workspaces/{ws.id}/reports/detailed"
    window = {"dateRangeStart": "2025-05-01T00:00:00Z", "dateRangeEnd": "2025-06-01T00:00:00Z"}
    cases: list[tuple[str, str, Any]] = [
        ("POST", f"{base}/time-entries", {"start": 12345}),
        ("POST", f"{base}/time-entries", {"start": "2025-05-02T10:00:00Z", "end": 5}),
        ("POST", f"{base}/user/{ws.owner_id}/time-entries", {"start": ["2025-05-02T10:00:00Z"]}),
        ("PATCH", f"{base}/user/{ws.owner_id}/time-entries", {"end": 5}),
        ("PATCH", f"{base}/user/{ws.owner_id}/time-entries", {"end": {"at": "now"}}),
        ("POST", f"{base}/time-entries", {"start": "2025-05-02T10:00:00Z", "tagIds": 5}),
        ("POST", f"{base}/time-entries", {"start": "2025-05-02T10:00:00Z", "projectId": ["p"]}),
        ("POST", f"{base}/time-entries", {"start": "2025-05-02T10:00:00Z", "customFields": ["x"]}),
        ("POST", report, {**window, "detailedFilter": "x"}),
        ("POST", report, {**window, "detailedFilter": {"page": "a"}}),
        ("POST", report, {**window, "detailedFilter": {"page": 1, "pageSize": True}}),
        ("POST", report, {**window, "users": {"ids": 5}}),
        ("POST", report, {**window, "description": 7}),
        ("POST", report, {"dateRangeStart": 1, "dateRangeEnd": 2}),
    ]
    for method, url, body in cases:
        response = await owner.request(method, url, json=body)
        assert_clockify_error(response)


async def test_requests_the_framework_refuses_answer_in_clockify_shape(simulator: InProcessSimulator) -> None:
    # Refused before a handler runs (parameter types, a missing body, no such route): FastAPI's
    # bare 422/404 bodies lacked Clockify's message and code.
    ws = simulator.workspace
    owner = simulator.owner_client()
    base = f"/api/v1/workspaces/{ws.id}"
    window = {"start": "2020-01-01T00:00:00Z", "end": "2030-01-01T00:00:00Z"}
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", f"{base}/projects", {"params": {"page": "abc"}}, 400),
        ("GET", f"{base}/tags", {"params": {"page-size": "1.5"}}, 400),
        ("GET", f"{base}/entities/updated", {"params": {"type": "TIME_ENTRY", "limit": "ten"} | window}, 400),
        ("POST", f"/reports/v1/workspaces/{ws.id}/reports/detailed", {}, 400),
        ("GET", f"{base}/no-such-thing", {}, 404),
        ("GET", "/api/v2/anything", {}, 404),
    ]
    for method, url, kwargs, status in cases:
        response = await owner.request(method, url, **kwargs)
        assert_clockify_error(response, status)


async def test_in_process_transport_answers_a_crash_with_a_500_response() -> None:
    """A handler bug reaches the client as the 500 a served simulator would send, not as an exception."""
    async with in_process_simulator(small_config()) as handle:
        app = create_simulator_app(simulator=handle.sim)

        @app.get("/api/v1/boom")
        async def boom() -> None:
            raise RuntimeError("a simulator bug")

        async with httpx.AsyncClient(transport=SimulatorTransport(app=app), base_url="http://clockify.test") as client:
            response = await client.get("/api/v1/boom")
        assert response.status_code == 500
        assert response.headers["content-type"].startswith(PROBLEM_CONTENT_TYPE)
        assert "a simulator bug" not in response.text


# The fuzz -----------------------------------------------------------------------------------------

def _simulator_app() -> FastAPI:
    return create_simulator_app(small_config())


@cache
def fuzzed_document() -> dict[str, Any]:
    """The simulator's API operations, bodies typed by the Clockify spec, in one OpenAPI document."""
    served = _simulator_app().openapi()
    clockify = load_spec()
    index = bundled_index()
    paths: dict[str, Any] = {}
    for path, item in served["paths"].items():
        if not path.startswith(API_PREFIXES):
            continue
        for method, operation in item.items():
            entry: dict[str, Any] = {"operationId": operation["operationId"],
                                     "parameters": operation.get("parameters", []),
                                     "responses": {"default": {"description": "any"}}}
            if "requestBody" in operation:
                known = index.by_operation_id(operation["operationId"])
                schema = known.request_body if known is not None and known.request_body else {"type": "object"}
                entry["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
            paths.setdefault(path, {})[method] = entry
    return {"openapi": "3.0.1", "info": {"title": "simulator", "version": "1"}, "paths": paths,
            "components": {"schemas": clockify["components"]["schemas"]}}


@cache
def cases_of(path: str, method: str) -> list[tuple[Any, bool]]:
    schema = schemathesis.openapi.from_dict(operation_slice(fuzzed_document(), method, path))
    operation = schema[path][method.upper()]
    strategy = st.one_of(*(operation.as_strategy(generation_mode=mode) for mode in schemathesis.GenerationMode))
    found: list[tuple[Any, bool]] = []

    @GENERATION
    @given(strategy, st.booleans())
    def collect(case: Any, existing_ids: bool) -> None:
        found.append((case, existing_ids))

    collect()
    return found


def existing_ids(handle: InProcessSimulator, path: str) -> dict[str, str]:
    """Ids that exist in the first workspace, for the path parameters of ``path``."""
    ws = handle.workspace
    project_id, task = next((t["projectId"], t["id"]) for t in ws.tasks.values())
    kind = {"clients": ws.clients, "tags": ws.tags, "user-groups": ws.user_groups}
    ids = {"workspaceId": ws.id, "userId": ws.owner_id, "projectId": project_id, "taskId": task}
    section = re.search(r"/([a-z-]+)/\{id\}", path)
    if section and section.group(1) in kind and kind[section.group(1)]:
        ids["id"] = next(iter(kind[section.group(1)]))
    elif section and section.group(1) == "time-entries":
        ids["id"] = ws.entries.id_of(next(r for r in range(len(ws.entries)) if not ws.entries.is_deleted(r)))
    return {k: v for k, v in ids.items() if v}


def operations() -> list[tuple[str, str]]:
    # Deletions last, so the ids the other operations use still exist.
    found = [(path, method) for path, item in fuzzed_document()["paths"].items() for method in item]
    return sorted(found, key=lambda route: (route[1] == "delete", route[0], route[1]))


async def test_fuzz_the_simulator_api_never_answers_500() -> None:
    config = small_config(rate_limit=RateLimitSettings(enabled=False))
    failures: dict[str, str] = {}
    sent = 0
    async with in_process_simulator(config) as handle:
        ws = handle.workspace
        client = handle.client(api_key=ws.api_keys[ws.owner_id])
        for path, method in operations():
            for case, use_existing in cases_of(path, method):
                parameters = dict(case.path_parameters or {})
                parameters["workspaceId"] = ws.id  # another workspace is a 403 before any handler runs
                if use_existing:
                    parameters |= {k: v for k, v in existing_ids(handle, path).items() if k in parameters}
                case = case.derive()  # cached cases stay as generated
                case.path_parameters = parameters
                kwargs = case.as_transport_kwargs(base_url=handle.base_url)
                body = kwargs.get("json")
                content = json.dumps(body).encode() if "json" in kwargs else kwargs.get("data")
                headers = {k: str(v) for k, v in kwargs["headers"].items()
                           if k.lower() not in {"x-api-key", "x-addon-token", "content-length"}}
                if content is not None:
                    headers.setdefault("content-type", "application/json")
                response = await client.request(method.upper(), kwargs["url"], params=kwargs.get("params"),
                                                headers=headers, content=content)
                sent += 1
                if response.status_code >= 500:
                    failures.setdefault(f"{method.upper()} {path}",
                                        f"{response.status_code} for params={kwargs.get('params')} "
                                        f"body={str(body)[:300]} -> {response.text[:300]}")
    logging.getLogger(__name__).warning("simulator fuzz: %d requests over %d operations, %d answered 500",
                                        sent, len(operations()), len(failures))
    assert sent >= len(operations()) * 2
    assert not failures, "\n".join(f"{route}: {what}" for route, what in sorted(failures.items()))


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_a_json_body_that_is_not_an_object_is_a_4xx(simulator: InProcessSimulator, method: str) -> None:
    ws = simulator.workspace
    owner = simulator.owner_client()
    url = f"/api/v1/workspaces/{ws.id}/tags" if method == "POST" else f"/api/v1/workspaces/{ws.id}/tags/{next(iter(ws.tags))}"
    for body in (b"[1, 2]", b"\"text\"", b"{not json"):
        response = await owner.request(method, url, content=body, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"].startswith(PROBLEM_CONTENT_TYPE)
