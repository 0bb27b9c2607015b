"""The explorer calls Clockify for the browser with the server-held token, within the tier's rules."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

import api_studio.app
import api_studio.settings
import universal_webhook.app
import universal_webhook.settings
from clockify_core.errors import ValidationFailed
from clockify_core.openapi import OpenApiIndex
from clockify_core.openapi.calls import prepare_call
from clockify_core.openapi.index import bundled_index
from clockify_core.openapi.models import ApiCall
from clockify_core.simulator.config import FaultSettings
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import AddonHarness, installed_addon


async def _execute(addon: AddonHarness, token: str, **request: Any) -> Any:
    return await addon.client.post("/api/explorer/execute", json=request, headers={"X-Addon-Token": token})


async def test_api_studio_reads_but_never_writes(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(simulator, api_studio.app.create_app, api_studio.settings.Settings, db_url=pg_url) as addon:
        owner = addon.user_token(role="OWNER")
        r = await _execute(addon, owner, operationId="getProjects", query={"page-size": 5})
        assert r.status_code == 200, r.text
        result = r.json()
        assert result["status"] == 200
        assert result["method"] == "GET"
        assert len(result["body"]) == 5
        assert result["path"] == f"/v1/workspaces/{addon.workspace_id}/projects"
        assert addon.installation.token not in r.text

        refused = await _execute(addon, owner, operationId="createNewTag", body={"name": "nope"})
        assert refused.status_code == 403
        assert refused.json()["type"].endswith("tier-policy")
        scope_refused = await _execute(addon, owner, operationId="getExpenses")
        assert scope_refused.status_code == 403, scope_refused.text

        ops = (await addon.client.get("/api/explorer/operations", params={"q": "tags"}, headers={"X-Addon-Token": owner})).json()
        by_id = {o["operation_id"]: o for o in ops}
        assert by_id["getTags"]["allowed"]
        assert not by_id["createNewTag"]["allowed"]
        assert "GET" in by_id["createNewTag"]["reason"]

        detail = (await addon.client.get("/api/explorer/operations/getTimeEntries", headers={"X-Addon-Token": owner})).json()
        names = {p["name"]: p for p in detail["parameters"]}
        assert names["userId"]["location"] == "path"
        assert "schema" in names["page-size"]

        history = (await addon.client.get("/api/explorer/history", headers={"X-Addon-Token": owner})).json()
        assert [(h["operation_id"], h["status"], h["source"]) for h in history] == [("getProjects", 200, "explorer")]


async def test_universal_webhook_writes_for_admins_only(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(
        simulator, universal_webhook.app.create_app, universal_webhook.settings.Settings, db_url=pg_url
    ) as addon:
        member = addon.user_token(role="USER")
        admin = addon.user_token(role="ADMIN")
        denied = await _execute(addon, member, operationId="createNewTag", body={"name": "from-explorer"})
        assert denied.status_code == 403
        created = await _execute(addon, admin, operationId="createNewTag", body={"name": "from-explorer"})
        assert created.status_code == 200, created.text
        assert created.json()['status'] == 201, created.text
        ws = simulator.sim.workspace(addon.workspace_id)
        assert any(t["name"] == "from-explorer" for t in ws.tags.values())
        # Members can still read.
        assert (await _execute(addon, member, operationId="getTags")).json()["status"] == 200


async def test_bad_input_is_a_clear_problem(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(
        simulator, universal_webhook.app.create_app, universal_webhook.settings.Settings, db_url=pg_url
    ) as addon:
        admin = addon.user_token(role="OWNER")
        cases = [
            ({"operationId": "noSuchOperation"}, 404, None),
            ({"operationId": "getTag"}, 422, "pathParams.id"),
            ({"operationId": "getTags", "query": {"bogus": 1}}, 422, "query.bogus"),
            ({"operationId": "getTags", "body": {"x": 1}}, 422, "body"),
            ({"operationId": "getTags", "pathParams": {"workspaceId": "someone-else"}}, 403, None),
            ({"pathParams": {}}, 422, "body.operationId"),
        ]
        for request, status, location in cases:
            r = await _execute(addon, admin, **request)
            assert r.status_code == status, (request, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            if location:
                assert location in [e["location"] for e in r.json()["errors"]], r.json()
        # Clockify's own errors are shown, not raised.
        missing = await _execute(addon, admin, operationId="getTag", pathParams={"id": "000000000000000000000000"})
        assert missing.status_code == 200
        assert missing.json()["status"] in (400, 404)


@pytest.mark.parametrize("header", [{}, {"X-Addon-Token": "garbage"}])
async def test_explorer_needs_a_user_token(simulator: InProcessSimulator, pg_url: str, header: dict[str, str]) -> None:
    async with installed_addon(simulator, api_studio.app.create_app, api_studio.settings.Settings, db_url=pg_url) as addon:
        r = await addon.client.post("/api/explorer/execute", json={"operationId": "getTags"}, headers=header)
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"


async def _calls(addon: AddonHarness) -> list[ApiCall]:
    async with addon.runtime.sessions() as session:
        return list((await session.execute(select(ApiCall).order_by(ApiCall.id))).scalars())


async def test_every_outcome_is_logged_and_the_limiter_answers_429(simulator: InProcessSimulator, pg_url: str) -> None:
    # A budget of ten requests (each attempt takes one) that refills in ~17 minutes, and no waiting
    # for it: calls past it are refused.
    async with installed_addon(
        simulator, universal_webhook.app.create_app, universal_webhook.settings.Settings, db_url=pg_url,
        rate_limit={"rate": 0.001, "burst": 10}, ui={"explorer_max_rate_wait": 0},
        http={"max_attempts": 2, "backoff_base": 0.01, "backoff_max": 0.02},
    ) as addon:
        owner = addon.user_token(role="OWNER")
        user_id = simulator.workspace.owner_id
        ok = await _execute(addon, owner, operationId="getTags")
        assert ok.status_code == 200, ok.text

        # Clockify answers 503 every time: the answer is shown (it is Clockify's) and logged with its status.
        simulator.sim.faults.configure(FaultSettings(error_rate=1, error_statuses=[503]))
        failing = await _execute(addon, owner, operationId="getTags")
        assert failing.status_code == 200, failing.text
        assert failing.json()["status"] == 503
        # Nothing answers at all: a problem for the browser, a row with no status and the reason.
        simulator.sim.faults.configure(FaultSettings(drop_rate=1))
        unreachable = await _execute(addon, owner, operationId="getTags")
        assert unreachable.status_code == 502, unreachable.text
        assert unreachable.headers["content-type"] == "application/problem+json"
        simulator.sim.faults.configure(FaultSettings())

        refused = None
        for _ in range(12):
            sent_before = len(simulator.sim.requests)
            response = await _execute(addon, owner, operationId="getProjects", query={"page-size": 1})
            if response.status_code == 429:
                refused = response
                break
            assert response.status_code == 200, response.text
        assert refused is not None, "the limiter never refused"
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"].endswith("rate-limited")
        assert int(refused.headers["retry-after"]) > 0
        assert len(simulator.sim.requests) == sent_before  # refused before anything went to Clockify

        calls = await _calls(addon)
        assert {(c.source, c.user_id) for c in calls} == {("explorer", user_id)}
        assert all(c.duration_ms is not None and c.duration_ms >= 0 for c in calls)
        outcomes = [(c.operation_id, c.status, c.error is not None) for c in calls]
        assert outcomes[:3] == [("getTags", 200, False), ("getTags", 503, False), ("getTags", None, True)]
        assert outcomes[-1] == ("getProjects", 429, True)
        assert set(outcomes[3:-1]) <= {("getProjects", 200, False)}
        assert "Rate limit" in (calls[-1].error or "")
        # The history the page shows is the same log, newest first.
        history = (await addon.client.get("/api/explorer/history", headers={"X-Addon-Token": owner})).json()
        assert (history[0]["operation_id"], history[0]["status"]) == ("getProjects", 429)
        assert len(history) == len(calls)


@pytest.mark.parametrize(
    ("request_", "location", "message"),
    [
        ({"operationId": "getProjects", "query": {"sort-order": "UP"}}, "query.sort-order", "is not one of"),
        ({"operationId": "getProjects", "query": {"page-size": "many"}}, "query.page-size", "integer"),
        ({"operationId": "getProjects", "query": {"page-size": 0}}, "query.page-size", "minimum"),
        ({"operationId": "getProjects", "query": {"page": 2**40}}, "query.page", "int32"),
        ({"operationId": "getProjects", "query": {"archived": "maybe"}}, "query.archived", "boolean"),
        ({"operationId": "getProjects", "query": {"client-status": ["ACTIVE", "GONE"]}}, "query.client-status",
         "is not"),
        ({"operationId": "createNewTag", "body": {"name": 5}}, "body.name", "string"),
        ({"operationId": "createNewTag", "body": ["not", "an", "object"]}, "body", "object"),
        ({"operationId": "updateTimeEntry", "pathParams": {"id": "5f0000000000000000000000"},
          "body": {"description": "no start"}}, "body.start", "required"),
        ({"operationId": "updateTimeEntry", "pathParams": {"id": "5f0000000000000000000000"},
          "body": {"start": "yesterday"}}, "body.start", "date-time"),
        ({"operationId": "updateTimeEntry", "pathParams": {"id": "5f0000000000000000000000"},
          "body": {"start": "2025-06-01T08:00:00Z", "type": "NAP"}}, "body.type", "is not one of"),
        ({"operationId": "updateTimeEntry", "pathParams": {"id": "5f0000000000000000000000"},
          "body": {"start": "2025-06-01T08:00:00Z", "tagIds": "urgent"}}, "body.tagIds", "array"),
        ({"operationId": "createNewTag", "body": {"name": {"a": [[[[[[]]]]]]} | {"n": 1}}}, "body.name", "string"),
    ],
)
async def test_values_are_validated_against_the_spec(
    simulator: InProcessSimulator, pg_url: str, request_: dict[str, Any], location: str, message: str
) -> None:
    async with installed_addon(
        simulator, universal_webhook.app.create_app, universal_webhook.settings.Settings, db_url=pg_url
    ) as addon:
        sent_before = len(simulator.sim.requests)
        r = await _execute(addon, addon.user_token(role="OWNER"), **request_)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        errors = {e["location"]: e["message"] for e in r.json()["errors"]}
        assert location in errors, errors
        assert message in errors[location], errors
        assert len(simulator.sim.requests) == sent_before
        assert await _calls(addon) == []


async def test_values_read_as_they_travel_and_null_for_optional_fields_pass(
    simulator: InProcessSimulator, pg_url: str
) -> None:
    async with installed_addon(
        simulator, universal_webhook.app.create_app, universal_webhook.settings.Settings, db_url=pg_url
    ) as addon:
        owner = addon.user_token(role="OWNER")
        # Text from a form: "2" is an integer, "false" a boolean; an enum value as given.
        r = await _execute(addon, owner, operationId="getProjects",
                           query={"page-size": "2", "archived": "false", "client-status": "ACTIVE", "page": 1})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == 200
        assert len(r.json()["body"]) == 2
        created = await _execute(addon, owner, operationId="createTimeEntry", body={
            "start": "2025-06-01T08:00:00Z", "end": "2025-06-01T09:00:00Z", "description": "from the explorer",
            "projectId": None, "tagIds": [], "billable": False})
        assert created.status_code == 200, created.text
        assert created.json()["status"] == 201, created.text


def test_path_values_refs_and_nullable_follow_the_schema() -> None:
    """The spec's own path parameters are plain strings; a small OpenAPI 3.0 document shows the
    same checks on typed path values, a $ref'd body and nullable."""
    spec = {
        "openapi": "3.0.1",
        "paths": {"/v1/workspaces/{workspaceId}/things/{kind}/{n}": {"put": {
            "operationId": "putThing",
            "parameters": [
                {"name": "workspaceId", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "kind", "in": "path", "required": True, "schema": {"$ref": "#/components/schemas/Kind"}},
                {"name": "n", "in": "path", "required": True, "schema": {"type": "integer", "maximum": 9}},
            ],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Thing"}}}},
            "responses": {"200": {"description": "ok"}},
        }}},
        "components": {"schemas": {
            "Kind": {"type": "string", "enum": ["A", "B"]},
            "Thing": {"type": "object", "required": ["when", "label"], "properties": {
                "when": {"type": "string", "format": "date"},
                "label": {"type": "string", "nullable": True},
                "inner": {"$ref": "#/components/schemas/Inner"},
            }},
            "Inner": {"type": "object", "required": ["x"], "properties": {"x": {"type": "number"}}},
        }},
    }
    index = OpenApiIndex(spec)
    operation = index.by_operation_id("putThing")
    assert operation is not None

    def problems(path: dict[str, Any], body: Any) -> dict[str, str]:
        try:
            prepare_call(operation, workspace_id="w", path_params=path, body=body, index=index)
        except ValidationFailed as exc:
            return {e["location"]: e["message"] for e in exc.extensions["errors"]}
        return {}

    good = {"when": "2025-01-31", "label": None, "inner": {"x": 1.5}}
    assert problems({"kind": "A", "n": "3"}, good) == {}
    assert problems({"kind": "A", "n": 3}, {**good, "inner": None}) == {}  # optional: null passes
    found = problems({"kind": "C", "n": "10"}, {"when": "31/01/2025", "inner": {"x": "1"}})
    assert set(found) == {"pathParams.kind", "pathParams.n", "body.when", "body.label", "body.inner.x"}, found
    assert "date" in found["body.when"]
    assert "required" in found["body.label"]
    assert problems({"kind": "A", "n": "x"}, good) == {"pathParams.n": "'x' is not of type 'integer'"}


def test_the_specs_object_wrapped_enums_are_checked_as_the_strings_clockify_takes() -> None:
    """TaxType (like TaskStatus) is generated as ``type: object`` with one string ``oneOf``."""
    operation = bundled_index().by_operation_id("updateInvoice")
    assert operation is not None
    required = {"currency": "USD", "discountPercent": 0, "dueDate": "2025-02-28T00:00:00Z",
                "issuedDate": "2025-01-31T00:00:00Z", "number": "7", "tax2Percent": 0, "taxPercent": 0}

    def problems(body: Any) -> dict[str, str]:
        try:
            prepare_call(operation, workspace_id="w", path_params={"invoiceId": "i1"}, body=body)
        except ValidationFailed as exc:
            return {e["location"]: e["message"] for e in exc.extensions["errors"]}
        return {}

    assert problems({**required, "taxType": "SIMPLE"}) == {}
    assert set(problems({**required, "taxType": "FLAT"})) == {"body.taxType"}
    assert set(problems({**required, "taxType": {"SIMPLE": "SIMPLE"}})) == {"body.taxType"}
