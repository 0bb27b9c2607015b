"""A member's explorer call runs with the member's own user token, so Clockify (here the
simulator) applies the member's permissions; owners and admins keep the installation token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI

import api_studio.app
import api_studio.settings
import clockify_addon.app
import clockify_addon.settings
import universal_webhook.app
import universal_webhook.settings
from clockify_core.config import ServiceSettings
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import AddonHarness, installed_addon

SERVICES: dict[str, tuple[Callable[..., FastAPI], type[ServiceSettings]]] = {
    "api_studio": (api_studio.app.create_app, api_studio.settings.Settings),
    "universal_webhook": (universal_webhook.app.create_app, universal_webhook.settings.Settings),
    "clockify_addon": (clockify_addon.app.create_app, clockify_addon.settings.Settings),
}


async def _execute(addon: AddonHarness, token: str, operation_id: str, **request: Any) -> dict[str, Any]:
    r = await addon.client.post("/api/explorer/execute", json={"operationId": operation_id, **request},
                                headers={"X-Addon-Token": token})
    # Clockify's refusal is shown as Clockify's answer (200 with status 403); our own refusal
    # would be a 403 problem. Either way the data must not be there.
    if r.status_code == 403:
        assert r.headers["content-type"] == "application/problem+json"
        return {"status": 403, "body": r.json(), "text": r.text}
    assert r.status_code == 200, r.text
    return {**r.json(), "text": r.text}


@pytest.mark.parametrize("service", list(SERVICES))
async def test_a_member_reads_with_their_own_permissions_on_every_service(
    simulator: InProcessSimulator, pg_url: str, service: str
) -> None:
    create_app, settings_cls = SERVICES[service]
    ws = simulator.workspace
    owner_id = ws.owner_id
    member_id = next(uid for uid in ws.users if uid != owner_id)
    others = [u["email"] for uid, u in ws.users.items() if uid != member_id]
    owner_entry = next(iter(ws.entries.iter_desc(ws.entries.user_rows(ws.user_ix.get(owner_id)), None, None)))
    owner_entry_id = ws.entries.id_of(owner_entry)
    async with installed_addon(simulator, create_app, settings_cls, db_url=pg_url) as addon:
        member = addon.user_token(role="USER", user_id=member_id)
        admin = addon.user_token(role="OWNER")

        users = await _execute(addon, member, "getUsersOfWorkspace", query={"include-roles": False})
        assert users["status"] == 403, users
        assert not [email for email in others if email in users["text"]]
        # The call reached Clockify as the member, not with the installation token's admin rights.
        assert simulator.sim.requests[-1].user_id == member_id
        assert simulator.sim.requests[-1].path.endswith("/users")

        theirs = await _execute(addon, member, "getTimeEntries", pathParams={"userId": owner_id})
        assert theirs["status"] == 403, theirs
        one = await _execute(addon, member, "getTimeEntry", pathParams={"id": owner_entry_id})
        assert one["status"] == 403, one
        assert owner_entry_id not in one["text"].replace(f"/time-entries/{owner_entry_id}", "")
        # What is the member's own stays readable.
        mine = await _execute(addon, member, "getTimeEntries", pathParams={"userId": member_id})
        assert mine["status"] == 200, mine
        assert all(entry["userId"] == member_id for entry in mine["body"])

        # An owner still reads everything, with the installation token.
        listed = await _execute(addon, admin, "getUsersOfWorkspace", query={"include-roles": False, "page-size": 500})
        assert listed["status"] == 200, listed
        assert {u["email"] for u in listed["body"]} >= set(others)
        owners = await _execute(addon, admin, "getTimeEntries", pathParams={"userId": owner_id})
        assert owners["status"] == 200, owners
        assert owners["body"]
        assert all(entry["userId"] == owner_id for entry in owners["body"])
        installation = addon.installation
        assert installation is not None
        assert simulator.sim.requests[-1].user_id == owner_id
        assert simulator.sim.requests[-1].addon_id == installation.addon_id
        assert installation.token not in listed["text"]

        # The call history: an admin sees every call of the workspace, a member only their own.
        everyone = (await addon.client.get("/api/explorer/history", headers={"X-Addon-Token": admin})).json()
        assert {call["user_id"] for call in everyone} == {member_id, owner_id}
        own = await addon.client.get("/api/explorer/history", headers={"X-Addon-Token": member})
        assert own.status_code == 200, own.text
        assert own.json()
        assert {call["user_id"] for call in own.json()} == {member_id}


@pytest.mark.parametrize("role", ["ADMIN", "WORKSPACE_ADMIN"])
async def test_both_spellings_of_the_admin_role_read_as_admins(
    simulator: InProcessSimulator, pg_url: str, role: str
) -> None:
    create_app, settings_cls = SERVICES["api_studio"]
    ws = simulator.workspace
    admin_id = next(uid for uid in ws.users if uid != ws.owner_id)
    async with installed_addon(simulator, create_app, settings_cls, db_url=pg_url) as addon:
        admin = addon.user_token(role=role, user_id=admin_id)
        listed = await _execute(addon, admin, "getUsersOfWorkspace", query={"include-roles": False, "page-size": 500})
        assert listed["status"] == 200, listed
        assert {u["id"] for u in listed["body"]} == set(ws.users)
        runs = await addon.client.get("/api/flows/1/runs", headers={"X-Addon-Token": admin})
        assert runs.status_code != 403, runs.text
