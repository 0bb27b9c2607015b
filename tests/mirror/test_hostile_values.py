"""Values PostgreSQL or Python cannot hold, in genuine signed webhooks: accepted, applied, nothing poisoned.

* Timestamps outside what UTC can hold (``0001-01-01T00:00:00+05:00`` lies before
  ``datetime.min`` once converted) are stored as NULL rather than failing the event.
* U+0000 (``\\u0000`` in JSON), which PostgreSQL text and jsonb refuse, is removed from
  every string before the event is stored, so the inbox, the mirror and flows never see it.

Each case is followed by an ordinary event of the same entity, which must apply too.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

import clockify_addon.app
import clockify_addon.settings
from clockify_core.installations.models import WebhookSubscription
from clockify_core.jobs.models import Job
from clockify_core.mirror.mapping import parse_time
from clockify_core.mirror.models import Client, TimeEntry
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import AddonHarness, installed_addon
from clockify_core.webhooks.models import InboxEvent

ENTRY_ID = "64f0c0ffee0000000000e001"
CLIENT_ID = "64f0c0ffee0000000000c001"


@pytest.fixture
async def addon(simulator: InProcessSimulator, pg_url: str) -> AsyncIterator[AddonHarness]:
    # The ids are not the simulator's: a re-read would (rightly) tombstone them.
    async with installed_addon(
        simulator,
        clockify_addon.app.create_app,
        clockify_addon.settings.Settings,
        db_url=pg_url,
        mirror={"refetch": "never"},
    ) as harness:
        await harness.process()
        yield harness


async def post(addon: AddonHarness, event: str, content: bytes) -> httpx.Response:
    async with addon.runtime.sessions() as s:
        sub = (
            await s.execute(
                select(WebhookSubscription).where(WebhookSubscription.event_type == event)
            )
        ).scalar_one()
    assert sub.token_encrypted is not None
    return await addon.client.post(
        sub.path,
        content=content,
        headers={
            "Clockify-Signature": addon.runtime.cipher.decrypt(sub.token_encrypted),
            "Clockify-Webhook-Event-Type": event,
            "content-type": "application/json",
        },
    )


def entry(addon: AddonHarness, start: Any, end: Any, duration: Any, **extra: Any) -> dict[str, Any]:
    return {
        "id": ENTRY_ID,
        "workspaceId": addon.workspace_id,
        "userId": addon.sim.workspace.owner_id,
        "description": "edge",
        "billable": False,
        "tagIds": [],
        "customFieldValues": [],
        "timeInterval": {"start": start, "end": end, "duration": duration},
        **extra,
    }


async def events(addon: AddonHarness) -> list[InboxEvent]:
    async with addon.runtime.sessions() as s:
        return list((await s.execute(select(InboxEvent).order_by(InboxEvent.id))).scalars())


def test_out_of_range_moments_parse_to_none() -> None:
    assert parse_time("0001-01-01T00:00:00+05:00") is None  # before datetime.min in UTC
    assert parse_time("9999-12-31T23:59:59-05:00") is None  # after datetime.max in UTC
    assert parse_time("0001-01-01T05:00:00+05:00") is not None  # exactly datetime.min: fine
    assert parse_time("2025-06-01T08:00:00Z") is not None


async def test_out_of_range_times_in_a_webhook_are_stored_as_null(addon: AddonHarness) -> None:
    body = entry(addon, "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", None)
    r = await post(addon, "NEW_TIME_ENTRY", json.dumps(body).encode())
    assert r.status_code == 200, r.text
    await addon.process()
    async with addon.runtime.sessions() as s:
        row = await s.get(TimeEntry, (addon.workspace_id, ENTRY_ID))
    assert row is not None
    assert (row.start_at, row.end_at, row.duration_seconds, row.description) == (
        None,
        None,
        None,
        "edge",
    )

    fixed = entry(
        addon, "2025-06-01T08:00:00Z", "2025-06-01T09:30:00Z", "PT1H30M", description="fixed"
    )
    assert (await post(addon, "TIME_ENTRY_UPDATED", json.dumps(fixed).encode())).status_code == 200
    await addon.process()
    assert [(e.event_type, e.status, e.attempts) for e in await events(addon)] == [
        ("NEW_TIME_ENTRY", "DONE", 1),
        ("TIME_ENTRY_UPDATED", "DONE", 1),
    ]
    async with addon.runtime.sessions() as s:
        row = await s.get(TimeEntry, (addon.workspace_id, ENTRY_ID))
    assert row is not None
    assert (row.duration_seconds, row.description) == (5400, "fixed")


@pytest.mark.parametrize(
    ("duration", "rate"),
    [
        pytest.param("PT999999H", {"amount": 15000, "currency": "USD"}, id="duration-past-int32"),
        pytest.param(3_000_000_000, {"amount": 1e19, "currency": "USD"}, id="numbers-past-the-columns"),
    ],
)
async def test_numbers_no_column_can_hold_are_stored_as_null(addon: AddonHarness, duration: Any, rate: Any) -> None:
    body = entry(addon, "2025-06-01T08:00:00Z", None, duration, hourlyRate=rate)
    assert (await post(addon, "NEW_TIME_ENTRY", json.dumps(body).encode())).status_code == 200
    await addon.process()
    [event] = await events(addon)
    assert (event.status, event.attempts) == ("DONE", 1)
    async with addon.runtime.sessions() as s:
        row = await s.get(TimeEntry, (addon.workspace_id, ENTRY_ID))
    assert row is not None
    assert row.duration_seconds is None
    assert row.hourly_rate == (15000 if rate["amount"] == 15000 else None)


async def test_nul_characters_are_removed_before_the_event_is_stored(addon: AddonHarness) -> None:
    body = {
        "id": CLIENT_ID,
        "workspaceId": addon.workspace_id,
        "name": "Acme\u0000 Corp",
        "archived": False,
        "note\u0000": "hidden\u0000key",
        "address": ["a\u0000", {"deep": "b\u0000c"}],
    }
    sent = json.dumps(body).encode()
    assert b"\\u0000" in sent
    assert (await post(addon, "NEW_CLIENT", sent)).status_code == 200
    assert (await post(addon, "NEW_CLIENT", sent)).status_code == 200  # a redelivery: stored once
    # A literal backslash-u in text is not a NUL and stays as sent.
    update = {
        "id": CLIENT_ID,
        "workspaceId": addon.workspace_id,
        "name": "C:\\u0000dir",
        "archived": True,
    }
    assert (await post(addon, "CLIENT_UPDATED", json.dumps(update).encode())).status_code == 200

    stored = await events(addon)
    assert [(e.event_type, e.deliveries) for e in stored] == [
        ("NEW_CLIENT", 2),
        ("CLIENT_UPDATED", 1),
    ]
    assert json.loads(stored[0].body) == {
        "id": CLIENT_ID,
        "workspaceId": addon.workspace_id,
        "name": "Acme Corp",
        "archived": False,
        "note": "hiddenkey",
        "address": ["a", {"deep": "bc"}],
    }
    await addon.process()
    stored = await events(addon)
    assert [(e.status, e.attempts) for e in stored] == [("DONE", 1), ("DONE", 1)]
    async with addon.runtime.sessions() as s:
        row = await s.get(Client, (addon.workspace_id, CLIENT_ID))
    assert row is not None
    assert (row.name, row.archived) == ("C:\\u0000dir", True)
    assert row.raw["note"] == "hiddenkey"
    assert row.raw["address"] == ["a", {"deep": "bc"}]


async def test_nul_characters_in_api_bodies_are_removed_too(simulator: InProcessSimulator, pg_url: str) -> None:
    """A pull reads API bodies: one NUL in Clockify's data must not fail a whole page."""
    operator_key = "operator-key-for-hostile-values-0123"
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url,
        security={"operator_api_key": operator_key},
    ) as addon:
        await addon.process()
        ws = simulator.sim.workspace(addon.workspace_id)
        clean = simulator.sim.ops.create_client(ws, {"name": "ok"})
        dirty = simulator.sim.ops.create_client(ws, {"name": "N\u0000UL", "note": "\u0000"})
        r = await addon.client.post(
            f"/api/operator/workspaces/{addon.workspace_id}/sync", json={"reference": True},
            headers={"X-API-Key": operator_key},
        )
        assert r.status_code == 202, r.text
        await addon.process()
        async with addon.runtime.sessions() as s:
            job = await s.get(Job, r.json()["job_id"])
            ok = await s.get(Client, (ws.id, clean["id"]))
            row = await s.get(Client, (ws.id, dirty["id"]))
    assert job is not None
    assert job.status == "DONE", job.error
    assert ok is not None
    assert row is not None
    assert (row.name, row.note) == ("NUL", None)
    assert row.raw["name"] == "NUL"
    assert "\x00" not in json.dumps(row.raw)
