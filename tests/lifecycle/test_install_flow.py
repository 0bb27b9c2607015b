"""Lifecycle end to end: the simulator installs each service, which stores and verifies everything."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

import api_studio.app
import api_studio.settings
import clockify_addon.app
import clockify_addon.settings
import universal_webhook.app
import universal_webhook.settings
from clockify_core.catalog import ALL_EVENTS, COMMON_EVENTS
from clockify_core.installations.models import Installation, WebhookSubscription
from clockify_core.jobs.models import Job
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import installed_addon
from clockify_core.webhooks.models import InboxEvent

SERVICES: dict[str, tuple[Any, Any, tuple[str, ...]]] = {
    "api_studio": (api_studio.app.create_app, api_studio.settings.Settings, COMMON_EVENTS),
    "universal_webhook": (universal_webhook.app.create_app, universal_webhook.settings.Settings, ALL_EVENTS),
    "clockify_addon": (clockify_addon.app.create_app, clockify_addon.settings.Settings, ALL_EVENTS),
}


@pytest.mark.parametrize("service", list(SERVICES))
async def test_install_stores_installation_and_every_webhook(
    service: str, simulator: InProcessSimulator, pg_url: str
) -> None:
    create_app, settings_cls, events = SERVICES[service]
    async with installed_addon(simulator, create_app, settings_cls, db_url=pg_url) as addon:
        await addon.process()
        async with addon.runtime.sessions() as s:
            inst = await s.get(Installation, addon.workspace_id)
            assert inst is not None
            assert inst.status == "ACTIVE"
            assert inst.backend_url == simulator.sim.urls.backend
            assert inst.reports_url == simulator.sim.urls.reports
            assert inst.auth_token_encrypted
            assert addon.installation.token not in inst.auth_token_encrypted
            subs = (await s.execute(select(WebhookSubscription))).scalars().all()
        active = {sub.event_type for sub in subs if sub.status == "ACTIVE"}
        assert active == set(events), set(events) - active
        assert sum(1 for sub in subs if sub.source == "MANIFEST") == 10
        assert all(sub.token_digest and sub.token_encrypted for sub in subs)

        status = (await addon.client.get("/api/status", headers={"X-Addon-Token": addon.user_token()})).json()
        assert status["webhooks"]["served"] == len(events)
        assert status["webhooks"]["missing"] == []
        assert status["installation"]["status"] == "ACTIVE"


async def test_every_event_reaches_the_inbox_and_the_mirror(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url
    ) as addon:
        await addon.process()
        for event in ALL_EVENTS:
            r = await simulator.client().post("/__sim/fire", json={"event": event, "workspaceId": addon.workspace_id})
            assert r.status_code == 200, r.text
        await addon.process()
        async with addon.runtime.sessions() as s:
            rows = (await s.execute(select(InboxEvent.event_type, InboxEvent.status))).all()
        assert {event for event, _ in rows} == set(ALL_EVENTS)
        assert {status for _, status in rows} == {"DONE"}


async def test_reinstall_replaces_tokens_and_uninstall_deletes_data(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(
        simulator, universal_webhook.app.create_app, universal_webhook.settings.Settings, db_url=pg_url
    ) as addon:
        await addon.process()
        async with addon.runtime.sessions() as s:
            before = {sub.token_digest for sub in (await s.execute(select(WebhookSubscription))).scalars()}
            assert (await s.scalar(select(Job.id).where(Job.kind == "bootstrap"))) is not None
        await simulator.sim.marketplace.uninstall(addon.installation.addon_id)
        await addon.process()
        async with addon.runtime.sessions() as s:
            inst = await s.get(Installation, addon.workspace_id)
            assert inst.status == "DELETED"
            assert inst.auth_token_encrypted is None
            assert (await s.execute(select(WebhookSubscription))).scalars().all() == []
        again = await simulator.install(addon.settings.base_url, workspace_id=addon.workspace_id)
        await addon.process()
        async with addon.runtime.sessions() as s:
            inst = await s.get(Installation, addon.workspace_id)
            assert inst.status == "ACTIVE"
            assert inst.addon_id == again.addon_id
            after = {sub.token_digest for sub in (await s.execute(select(WebhookSubscription))).scalars()}
        assert after
        assert not (after & before)
