"""The explorer calls Clockify for the browser with the server-held token, within the tier's rules."""

from __future__ import annotations

from typing import Any

import pytest

import api_studio.app
import api_studio.settings
import universal_webhook.app
import universal_webhook.settings
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
