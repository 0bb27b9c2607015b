"""Every sample body Clockify documents, posted to every tier that serves its event, lands in the mirror."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import api_studio.app
import api_studio.settings
import clockify_addon.app
import clockify_addon.settings
import universal_webhook.app
import universal_webhook.settings
from clockify_core.catalog import EVENTS
from clockify_core.installations.models import WebhookSubscription
from clockify_core.mirror.models import Entity
from clockify_core.mirror.writer import table_for
from clockify_core.payloads import entity_id
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import installed_addon
from clockify_core.webhooks.models import InboxEvent

SAMPLES = {p.stem: json.loads(p.read_text()) for p in (Path(__file__).parents[1] / "fixtures" / "samples").glob("*.json")}
SERVICES: dict[str, tuple[Any, Any]] = {
    "api_studio": (api_studio.app.create_app, api_studio.settings.Settings),
    "universal_webhook": (universal_webhook.app.create_app, universal_webhook.settings.Settings),
    "clockify_addon": (clockify_addon.app.create_app, clockify_addon.settings.Settings),
}


@pytest.mark.parametrize("service", list(SERVICES))
async def test_every_sample_of_the_tier_reaches_the_mirror(service: str, simulator: InProcessSimulator, pg_url: str) -> None:
    create_app, settings_cls = SERVICES[service]
    # Sample ids are not in the simulator's data; re-reading them would (rightly) mark them deleted.
    async with installed_addon(simulator, create_app, settings_cls, db_url=pg_url, mirror={"refetch": "never"}) as addon:
        await addon.process()
        ws = addon.workspace_id
        async with addon.runtime.sessions() as s:
            subs = {sub.event_type: sub for sub in (await s.execute(select(WebhookSubscription))).scalars()}
        served = [e for e in addon.runtime.profile.events if e in SAMPLES]
        posted: dict[str, dict[str, Any]] = {}
        assert len(served) == (12 if service == "api_studio" else 49)
        for event in served:
            body = dict(SAMPLES[event])
            if "workspaceId" in body:
                body["workspaceId"] = ws
            posted[event] = body
            token = addon.runtime.cipher.decrypt(subs[event].token_encrypted)
            r = await addon.client.post(
                subs[event].path, content=json.dumps(body),
                headers={"Clockify-Signature": token, "Clockify-Webhook-Event-Type": event, "content-type": "application/json"},
            )
            assert r.status_code == 200, (event, r.text)
            assert r.json()['status'] == 'accepted', (event, r.text)
        await addon.process()
        async with addon.runtime.sessions() as s:
            statuses = {e.event_type: e.status for e in (await s.execute(select(InboxEvent))).scalars()}
            assert statuses == dict.fromkeys(served, "DONE")
            for event in served:
                spec = EVENTS[event]
                table = table_for(spec.kind)
                row_id = entity_id(spec.kind, posted[event], spec.id_field)
                clauses = [table.c.workspace_id == ws, table.c.id == row_id]
                if table is Entity.__table__:
                    clauses.append(table.c.kind == spec.kind)
                row = (await s.execute(select(table.c.last_event, table.c.deleted_at).where(*clauses))).first()
                assert row is not None, event
