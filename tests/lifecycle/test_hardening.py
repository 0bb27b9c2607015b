"""Lifecycle edge cases through the simulator: reinstalls across webhook caps, uninstall cleanup,
refused registrations, a paused workspace, and replays after an uninstall."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import Table, func, select

import clockify_addon.app
import clockify_addon.settings
import universal_webhook.app
import universal_webhook.settings
from clockify_core.catalog import ALL_EVENTS, event_slug
from clockify_core.errors import BadRequest
from clockify_core.installations.models import Installation, WebhookSubscription
from clockify_core.jobs import queue
from clockify_core.jobs.models import Job, JobKind
from clockify_core.mirror.models import Client
from clockify_core.models import metadata
from clockify_core.security.crypto import token_digest
from clockify_core.simulator.marketplace import Installation as SimInstallation
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import ADDON_URL, AddonHarness, installed_addon
from clockify_core.webhooks.models import InboxEvent

UW = (universal_webhook.app.create_app, universal_webhook.settings.Settings)
CA = (clockify_addon.app.create_app, clockify_addon.settings.Settings)


async def unavailable(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An add-on that is down: every call is answered 503."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def registered_hooks(
    simulator: InProcessSimulator, inst: SimInstallation
) -> dict[str, dict[str, Any]]:
    """The webhooks ``inst`` registered through the Webhooks API, by event."""
    hooks = simulator.sim.workspace(inst.workspace_id).webhooks.values()
    return {h["webhookEvent"]: h for h in hooks if h.get("_addonId") == inst.addon_id}


def clockify_tokens(simulator: InProcessSimulator, inst: SimInstallation) -> dict[str, str]:
    """Event -> the token Clockify signs that event's deliveries with, for ``inst``."""
    tokens = {w.event: w.token for w in inst.webhooks}
    tokens.update(
        {event: str(h["authToken"]) for event, h in registered_hooks(simulator, inst).items()}
    )
    return tokens


async def send_webhook(addon: AddonHarness, event: str, token: str, body: dict[str, Any]) -> int:
    response = await addon.client.post(
        f"/webhooks/{event_slug(event)}",
        content=json.dumps(body),
        headers={
            "Clockify-Signature": token,
            "Clockify-Webhook-Event-Type": event,
            "Content-Type": "application/json",
        },
    )
    return response.status_code


async def workspace_row_counts(addon: AddonHarness, workspace_id: str) -> dict[str, int]:
    """Rows per table holding ``workspace_id``, the installation record and jobs left out."""
    out: dict[str, int] = {}
    async with addon.runtime.sessions() as s:
        for table in metadata.sorted_tables:
            assert isinstance(table, Table)
            if "workspace_id" in table.c and table.name not in {"installations", "jobs"}:
                count = await s.scalar(
                    select(func.count())
                    .select_from(table)
                    .where(table.c.workspace_id == workspace_id)
                )
                out[table.name] = int(count or 0)
    return out


async def test_reinstall_across_webhook_caps_keeps_subscriptions_consistent(
    simulator: InProcessSimulator, pg_url: str
) -> None:
    """INSTALLED arrives for an installation we still hold (its DELETED never reached us), each time
    with another manifest cap: runtime rows of events the manifest now declares must give way."""
    simulator.sim.config.addon_webhook_cap = 20
    async with installed_addon(simulator, *UW, db_url=pg_url) as addon:
        await addon.process()
        inst = addon.installation
    for cap in (5, 20, 10, 10):
        assert inst is not None
        await simulator.mount_addon(ADDON_URL, unavailable)
        await simulator.sim.marketplace.uninstall(
            inst.addon_id
        )  # DELETED answered 503: we still hold it
        async with installed_addon(
            simulator, *UW, db_url=pg_url, manifest={"webhook_cap": cap}
        ) as addon:
            inst = addon.installation
            assert inst is not None
            assert simulator.sim.marketplace.calls[-1].kind == "INSTALLED"
            assert simulator.sim.marketplace.calls[-1].status_code == 200, cap
            await addon.process()
            async with addon.runtime.sessions() as s:
                stored = await s.get(Installation, addon.workspace_id)
                assert stored is not None
                assert stored.addon_id == inst.addon_id
                subs = (await s.scalars(select(WebhookSubscription))).all()
                jobs = (await s.scalars(select(Job).where(Job.status != "DONE"))).all()
            assert [(j.kind, j.status, j.error) for j in jobs] == []
            assert sorted(s.event_type for s in subs) == sorted(ALL_EVENTS), cap
            assert {s.status for s in subs} == {"ACTIVE"}
            assert {s.event_type for s in subs if s.source == "MANIFEST"} == set(addon.runtime.profile.events[:cap])
            # Each row holds exactly the token Clockify now signs that event with.
            tokens = clockify_tokens(simulator, inst)
            assert {s.event_type: s.token_digest for s in subs} == {
                e: token_digest(t) for e, t in tokens.items()
            }
            # Clockify holds one registration per runtime event, none left over from earlier installs.
            assert sorted(registered_hooks(simulator, inst)) == sorted(addon.runtime.profile.events[cap:])
            assert (
                len(simulator.sim.workspace(addon.workspace_id).webhooks) == len(ALL_EVENTS) - cap
            )


async def test_uninstall_drops_registrations_and_everything_of_the_workspace(
    simulator: InProcessSimulator, pg_url: str
) -> None:
    async with installed_addon(simulator, *CA, db_url=pg_url) as addon:
        await addon.process()
        inst = addon.installation
        assert inst is not None
        tokens = clockify_tokens(simulator, inst)
        assert len(registered_hooks(simulator, inst)) == len(ALL_EVENTS) - 10
        ws = simulator.sim.workspace(addon.workspace_id)
        owner = simulator.owner_client()
        r = await owner.post(f"/api/v1/workspaces/{ws.id}/tags", json={"name": "before uninstall"})
        assert r.status_code == 201, r.text
        tag = r.json()
        await addon.process()
        before = await workspace_row_counts(addon, addon.workspace_id)
        assert before["tags"] > 0
        assert before["time_entries"] > 0
        assert before["inbox_events"] == 1

        await simulator.sim.marketplace.uninstall(inst.addon_id)
        assert simulator.sim.marketplace.calls[-1].status_code == 200
        assert (
            registered_hooks(simulator, inst) == {}
        )  # Clockify drops an add-on's webhooks with it
        await addon.process()

        assert set((await workspace_row_counts(addon, addon.workspace_id)).values()) == {0}
        async with addon.runtime.sessions() as s:
            stored = await s.get(Installation, addon.workspace_id)
            assert stored is not None
            assert stored.status == "DELETED"
            assert stored.auth_token_encrypted is None
            [job] = (
                await s.scalars(select(Job).where(Job.kind == JobKind.UNREGISTER_WEBHOOKS))
            ).all()
        # The token went with the uninstall: a 401 means the registrations are gone, not a failure.
        assert (job.status, job.attempts, job.error) == ("DONE", 1, None)
        assert job.progress["removed"] == 0
        assert job.progress["already_gone"] == job.progress["requested"] == len(ALL_EVENTS) - 10
        assert "token" not in job.params

        # Replays of what Clockify sent before the uninstall are refused and store nothing.
        for event in ("NEW_TAG", ALL_EVENTS[0]):
            assert await send_webhook(addon, event, tokens[event], tag) == 401
        old = inst.signer.lifecycle_token(inst.workspace_id, inst.addon_id)
        ids = {"addonId": inst.addon_id, "workspaceId": inst.workspace_id}
        for route, body in (
            ("deleted", {**ids, "asUser": inst.as_user}),
            ("status-changed", {**ids, "status": "ACTIVE"}),
            ("settings-updated", {**ids, "settings": []}),
        ):
            r = await addon.client.post(
                f"/lifecycle/{route}", json=body, headers={"X-Addon-Lifecycle-Token": old}
            )
            assert r.status_code == 404, (route, r.text)
        # A captured INSTALLED, replayed under a fresh lifecycle token, carries the revoked token.
        [installed] = [c for c in simulator.sim.marketplace.calls if c.kind == "INSTALLED"]
        r = await addon.client.post(
            "/lifecycle/installed", json=installed.payload, headers={"X-Addon-Lifecycle-Token": old}
        )
        assert r.status_code == 401, r.text
        assert "revoked" in r.json()["detail"]
        assert set((await workspace_row_counts(addon, addon.workspace_id)).values()) == {0}
        async with addon.runtime.sessions() as s:
            stored = await s.get(Installation, addon.workspace_id)
            assert stored is not None
            assert (stored.status, stored.auth_token_encrypted) == ("DELETED", None)

        # A genuine reinstall brings a new token and is welcome; so is the one after it.
        for _ in range(2):
            await simulator.sim.marketplace.uninstall((await simulator.install(ADDON_URL)).addon_id)
        third = await simulator.install(ADDON_URL)
        async with addon.runtime.sessions() as s:
            stored = await s.get(Installation, addon.workspace_id)
            assert stored is not None
            assert (stored.status, stored.addon_id) == ("ACTIVE", third.addon_id)
            assert stored.revoked_token_digests is not None
            assert len(stored.revoked_token_digests) == 3
        # The first installation's INSTALLED, three installs on, is still a replay.
        r = await addon.client.post(
            "/lifecycle/installed", json=installed.payload, headers={"X-Addon-Lifecycle-Token": old}
        )
        assert r.status_code == 401, r.text
        async with addon.runtime.sessions() as s:
            stored = await s.get(Installation, addon.workspace_id)
            assert stored is not None
            assert (stored.status, stored.addon_id) == ("ACTIVE", third.addon_id)
            assert stored.auth_token_encrypted is not None
            assert addon.runtime.cipher.decrypt(stored.auth_token_encrypted) == third.token


async def test_refused_registrations_are_recorded_and_reported(
    simulator: InProcessSimulator, pg_url: str
) -> None:
    simulator.sim.config.webhook_limit = 5
    async with installed_addon(simulator, *CA, db_url=pg_url) as addon:
        assert simulator.sim.marketplace.calls[-1].status_code == 200
        await addon.process()
        status = await addon.client.get(
            "/api/status", headers={"X-Addon-Token": addon.user_token()}
        )
        assert status.status_code == 200, status.text
        hooks = status.json()["webhooks"]
        assert (hooks["manifest"], hooks["runtime"], hooks["served"]) == (10, 5, 15)
        assert sorted(r["event"] for r in hooks["refused"]) == sorted(addon.runtime.profile.events[15:])
        assert all("HTTP 400" in r["error"] and "limit" in r["error"] for r in hooks["refused"])
        assert sorted(hooks["missing"]) == sorted(addon.runtime.profile.events[15:])
        async with addon.runtime.sessions() as s:
            [job] = (
                await s.scalars(select(Job).where(Job.kind == JobKind.REGISTER_WEBHOOKS))
            ).all()
        assert (job.status, job.progress["registered"], job.progress["refused"]) == (
            "DONE",
            5,
            len(ALL_EVENTS) - 15,
        )


async def test_the_marketplace_refuses_a_manifest_over_the_webhook_cap(
    simulator: InProcessSimulator, pg_url: str
) -> None:
    async with installed_addon(
        simulator, *CA, db_url=pg_url, install=False, manifest={"webhook_cap": 11}
    ) as addon:
        with pytest.raises(BadRequest, match="more than 10 webhooks"):
            await simulator.install(addon.settings.base_url)
        assert simulator.sim.marketplace.installations == {}
        simulator.sim.config.addon_webhook_cap = 11
        assert (await simulator.install(addon.settings.base_url)).addon_id


@pytest.mark.parametrize(
    "body", [b'[{"id": ["notify"], "value": 1}]', b'[{"id": 5}]', b"[1]", b'"text"', b"{not json"]
)
async def test_simulator_settings_patch_refuses_a_malformed_body(
    simulator: InProcessSimulator, pg_url: str, body: bytes
) -> None:
    async with installed_addon(simulator, *CA, db_url=pg_url) as addon:
        inst = addon.installation
        assert inst is not None
        api = simulator.client(token=inst.token)
        r = await api.patch(
            f"/api/addon/workspaces/{inst.workspace_id}/settings",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 400, r.text


async def test_an_inactive_workspace_stores_webhooks_and_applies_them_when_active(
    simulator: InProcessSimulator, pg_url: str
) -> None:
    event = "CLIENT_UPDATED"  # a manifest webhook of clockify_addon: Clockify holds it while paused
    async with installed_addon(simulator, *CA, db_url=pg_url) as addon:
        inst = addon.installation
        assert inst is not None
        assert event in {w.event for w in inst.webhooks}
        ws = simulator.sim.workspace(addon.workspace_id)
        owner = simulator.owner_client()
        r = await owner.post(
            f"/api/v1/workspaces/{ws.id}/clients", json={"name": "before the pause"}
        )
        assert r.status_code == 201, r.text
        client_id = r.json()["id"]
        await addon.process()
        await simulator.sim.marketplace.change_status(inst.addon_id, "INACTIVE")
        assert simulator.sim.marketplace.calls[-1].status_code == 200

        r = await owner.put(
            f"/api/v1/workspaces/{ws.id}/clients/{client_id}", json={"name": "while paused"}
        )
        assert r.status_code == 200, r.text
        # A delivery that was on its way when the add-on was paused.
        assert (
            await send_webhook(addon, event, clockify_tokens(simulator, inst)[event], r.json())
            == 200
        )
        async with addon.runtime.sessions.begin() as s:
            sync_job = await queue.enqueue(s, ws.id, JobKind.SYNC)
        calls = len(simulator.sim.requests)
        await addon.process()
        assert len(simulator.sim.requests) == calls  # no outbound call for a paused workspace
        async with addon.runtime.sessions() as s:
            [stored] = (
                await s.scalars(select(InboxEvent).where(InboxEvent.event_type == event))
            ).all()
            assert (stored.status, stored.attempts) == ("PENDING", 0)
            row = await s.get(Client, (ws.id, client_id))
            assert row is not None
            assert row.name == "before the pause"
            job = await s.get(Job, sync_job)
            assert job is not None
            assert job.status == "QUEUED"

        await simulator.sim.marketplace.change_status(inst.addon_id, "ACTIVE")
        await addon.process()
        assert len(simulator.sim.requests) > calls
        async with addon.runtime.sessions() as s:
            [stored] = (
                await s.scalars(select(InboxEvent).where(InboxEvent.event_type == event))
            ).all()
            assert stored.status == "DONE"
            row = await s.get(Client, (ws.id, client_id))
            assert row is not None
            assert row.name == "while paused"
            job = await s.get(Job, sync_job)
            assert job is not None
            assert job.status == "DONE"
