"""Deduplication never drops a genuine change (issue 15 item 3), ids are checked at the door
and a failed apply stores no SQL (item 10).

Clockify's bodies carry no delivery id and no version, so an edit back to an earlier state
sends a body byte-identical to an earlier one. Each test drives universal_webhook (mirror and
flows) installed in the simulator, on PostgreSQL and SQLite: Clockify's changes are made in the
simulator, which delivers the webhooks over HTTP; the mirror only follows the bodies
(``refetch: never``), so what the inbox drops, the mirror and the flows miss.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text, update

import universal_webhook.app
import universal_webhook.settings
from clockify_core.db import create_engine
from clockify_core.db.base import utcnow
from clockify_core.mirror.models import TimeEntry
from clockify_core.security.hmac import signed_headers
from clockify_core.simulator.config import DeliverySettings
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import AddonHarness, installed_addon
from clockify_core.webhooks import inbox
from clockify_core.webhooks.models import InboxEvent
from tests.flows.conftest import FAST_FLOWS, create_flow, new_entry, runs_of, settle
from tests.lifecycle.test_hardening import clockify_tokens, send_webhook

WINDOW = 120.0


@pytest.fixture
async def uw(simulator: InProcessSimulator, db_url: str) -> AsyncIterator[AddonHarness]:
    async with installed_addon(
        simulator, universal_webhook.app.create_app, universal_webhook.settings.Settings, db_url=db_url,
        flows=FAST_FLOWS, mirror={"refetch": "never"}, webhooks={"dedup_window_seconds": WINDOW},
    ) as addon:
        await addon.process()
        yield addon


async def _flow_on(addon: AddonHarness, event: str) -> str:
    flow = await create_flow(addon, {
        "name": f"Count {event}", "trigger": {"events": [event]}, "conditions": None,
        "actions": [{"type": "set_variable", "name": "seen", "value": "{{ $.description }}"}],
        "max_runs_per_minute": 1000,
    })
    return str(flow["id"])


async def _events(addon: AddonHarness, event: str) -> list[InboxEvent]:
    async with addon.runtime.sessions() as s:
        rows = await s.execute(select(InboxEvent).where(InboxEvent.event_type == event).order_by(InboxEvent.id))
        return list(rows.scalars())


def _sent(simulator: InProcessSimulator, event: str, entry_id: str) -> list[bytes]:
    """The bodies the simulator delivered for ``event`` of ``entry_id``, in order, each answered 2xx."""
    deliveries = [d for d in simulator.sim.delivery.query() if d.event == event and json.loads(d.body)["id"] == entry_id]
    assert {d.status for d in deliveries} == {"delivered"}
    return [d.body for d in deliveries]


async def _mirrored(addon: AddonHarness, entry_id: str) -> TimeEntry:
    async with addon.runtime.sessions() as s:
        row = await s.get(TimeEntry, (addon.workspace_id, entry_id))
    assert row is not None
    return row


async def _entry(addon: AddonHarness, simulator: InProcessSimulator) -> tuple[str, int]:
    entry = await new_entry(simulator, description="created")
    await settle(addon)
    row = simulator.workspace.entries.row_of(entry["id"])
    assert row is not None
    return str(entry["id"]), row


async def test_a_rename_back_within_seconds_is_three_events_applied_and_run(
    uw: AddonHarness, simulator: InProcessSimulator
) -> None:
    flow = await _flow_on(uw, "TIME_ENTRY_UPDATED")
    entry_id, row = await _entry(uw, simulator)
    ws, ops = simulator.workspace, simulator.sim.ops
    for description in ("A", "B", "A"):
        ops.patch_entry(ws, row, {"description": description})
    await settle(uw)

    a, b, a_again = _sent(simulator, "TIME_ENTRY_UPDATED", entry_id)
    assert a == a_again  # byte-identical: nothing in Clockify's body tells them apart
    assert a != b
    stored = await _events(uw, "TIME_ENTRY_UPDATED")
    assert [(e.body.encode(), e.status, e.deliveries) for e in stored] == [(a, "DONE", 1), (b, "DONE", 1),
                                                                          (a_again, "DONE", 1)]
    assert (await _mirrored(uw, entry_id)).description == "A"
    runs = await runs_of(uw, flow)
    assert [(r.status, r.inbox_event_id) for r in runs] == [("SUCCEEDED", e.id) for e in stored]


async def test_delete_restore_delete_is_three_events_applied_and_run(
    uw: AddonHarness, simulator: InProcessSimulator
) -> None:
    flow = await _flow_on(uw, "TIME_ENTRY_DELETED")
    entry_id, row = await _entry(uw, simulator)
    ws, ops = simulator.workspace, simulator.sim.ops
    ops.delete_entry(ws, row)
    ops.restore_entry(ws, row)
    ops.delete_entry(ws, row)
    await settle(uw)

    deleted, deleted_again = _sent(simulator, "TIME_ENTRY_DELETED", entry_id)
    assert deleted == deleted_again
    assert len(_sent(simulator, "TIME_ENTRY_RESTORED", entry_id)) == 1
    async with uw.runtime.sessions() as s:
        rows = await s.execute(
            select(InboxEvent.event_type, InboxEvent.status).where(InboxEvent.entity_key == f"time_entry:{entry_id}")
            .order_by(InboxEvent.id)
        )
        assert [tuple(r) for r in rows] == [("NEW_TIME_ENTRY", "DONE"), ("TIME_ENTRY_DELETED", "DONE"),
                                            ("TIME_ENTRY_RESTORED", "DONE"), ("TIME_ENTRY_DELETED", "DONE")]
    assert (await _mirrored(uw, entry_id)).deleted_at is not None
    assert [r.status for r in await runs_of(uw, flow)] == ["SUCCEEDED", "SUCCEEDED"]


async def test_a_redelivery_within_the_window_is_stored_and_run_once(
    uw: AddonHarness, simulator: InProcessSimulator
) -> None:
    """Clockify sending one delivery twice (here at once, by two senders racing) is one event."""
    flow = await _flow_on(uw, "TIME_ENTRY_UPDATED")
    entry_id, row = await _entry(uw, simulator)
    await simulator.sim.delivery.reconfigure(DeliverySettings(duplicate_rate=1.0, concurrency=2))
    simulator.sim.ops.patch_entry(simulator.workspace, row, {"description": "sent twice"})
    await settle(uw)

    first, copy = _sent(simulator, "TIME_ENTRY_UPDATED", entry_id)
    assert first == copy
    [stored] = await _events(uw, "TIME_ENTRY_UPDATED")
    assert (stored.status, stored.deliveries) == ("DONE", 2)
    assert [r.inbox_event_id for r in await runs_of(uw, flow)] == [stored.id]


async def test_an_equal_body_after_the_window_is_a_new_event_applied_and_run(
    uw: AddonHarness, simulator: InProcessSimulator
) -> None:
    """The same save twice, further apart than the retry window: two events, two runs.
    Time moves through the stored ``received_at`` (no sleeping through the window)."""
    flow = await _flow_on(uw, "TIME_ENTRY_UPDATED")
    entry_id, row = await _entry(uw, simulator)
    ws, ops = simulator.workspace, simulator.sim.ops
    ops.patch_entry(ws, row, {"description": "saved"})
    await settle(uw)
    [first] = await _events(uw, "TIME_ENTRY_UPDATED")
    async with uw.runtime.sessions.begin() as s:
        await s.execute(
            update(InboxEvent).where(InboxEvent.id == first.id)
            .values(received_at=first.received_at - timedelta(seconds=WINDOW + 1))
        )
    ops.patch_entry(ws, row, {"description": "saved"})
    await settle(uw)

    body, same = _sent(simulator, "TIME_ENTRY_UPDATED", entry_id)
    assert body == same
    stored = await _events(uw, "TIME_ENTRY_UPDATED")
    assert [(e.status, e.deliveries) for e in stored] == [("DONE", 1), ("DONE", 1)]
    assert [(r.status, r.inbox_event_id) for r in await runs_of(uw, flow)] == [("SUCCEEDED", e.id) for e in stored]


async def test_ids_that_clockify_would_not_send_are_refused_and_nothing_stored(
    uw: AddonHarness, simulator: InProcessSimulator
) -> None:
    assert uw.installation is not None
    tokens = clockify_tokens(simulator, uw.installation)
    ws = uw.workspace_id
    user = simulator.workspace.owner_id
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("TAG_UPDATED", {"id": "t" * 5000, "name": "x", "workspaceId": ws}, "id must be a Clockify id"),
        ("EXPENSE_DELETED", {"expenseId": "../../etc", "workspaceId": ws}, "expenseId must be a Clockify id"),
        ("BILLABLE_RATE_UPDATED", {"rateChangeSource": "PROJECT_MEMBER", "workspaceId": ws,
                                   "modifiedEntity": {"userId": "u" * 5000, "targetId": user}},
         "the rate in the body is not named by Clockify ids"),
    ]
    async with uw.runtime.sessions() as s:
        before = await s.scalar(select(func.count()).select_from(InboxEvent))
    for event, body, reason in cases:
        r = await uw.client.post(
            f"/webhooks/{event.lower().replace('_', '-')}", content=json.dumps(body),
            headers={"Clockify-Signature": tokens[event], "Clockify-Webhook-Event-Type": event,
                     "Content-Type": "application/json"},
        )
        assert r.status_code == 400, (event, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert reason in r.json()["detail"], r.json()
    async with uw.runtime.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(InboxEvent)) == before
    # Clockify's own shapes pass: a rate keyed by a source name and two ids.
    sample = {"rateChangeSource": "PROJECT_MEMBER", "workspaceId": ws,
              "modifiedEntity": {"userId": user, "targetId": "5f1185197db7a8637ffcaf1d"}}
    assert await send_webhook(uw, "BILLABLE_RATE_UPDATED", tokens["BILLABLE_RATE_UPDATED"], sample) == 200


async def test_a_failed_apply_stores_a_short_error_without_sql_or_body(
    simulator: InProcessSimulator, db_url: str
) -> None:
    """The database refuses the mirror row (a constraint a DBA added): the stored error names
    the failure but holds neither the statement nor the body's values."""
    marker = "body-value-7731"
    async with installed_addon(
        simulator, universal_webhook.app.create_app, universal_webhook.settings.Settings, db_url=db_url,
        mirror={"refetch": "never"}, worker={"max_attempts": 1},
    ) as addon:
        await addon.process()
        async with addon.runtime.sessions.begin() as s:
            if db_url.startswith("postgresql"):
                await s.execute(text(
                    f"ALTER TABLE time_entries ADD CONSTRAINT no_marker CHECK (description IS DISTINCT FROM '{marker}')"
                ))
            else:
                await s.execute(text(
                    f"CREATE TRIGGER no_marker BEFORE INSERT ON time_entries WHEN NEW.description = '{marker}' "
                    "BEGIN SELECT RAISE(ABORT, 'no_marker refuses this row'); END"
                ))
        entry = await new_entry(simulator, description=marker)
        await addon.process()
        [event] = await _events(addon, "NEW_TIME_ENTRY")

    assert event.status == "DEAD"
    error = event.last_error or ""
    assert "IntegrityError" in error, error
    assert "no_marker" in error
    for leaked in (marker, entry["id"], "INSERT", "SQL:", "parameters", "time_entries ("):
        assert leaked not in error, (leaked, error)
    assert len(error) <= 500


async def _batch(db_url: str, events: list[inbox.NewEvent]) -> list[inbox.Stored | None]:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            stored = await inbox.store_batch(conn, events)
            await conn.commit()
        return stored
    finally:
        await engine.dispose()


def _new(entity: str, body: dict[str, Any], *, at: datetime) -> inbox.NewEvent:
    return inbox.NewEvent(workspace_id="ws-batch", event_type="TAG_UPDATED", body=json.dumps(body).encode(), received_at=at,
                          entity_key=f"tag:{entity}", window=WINDOW)


async def test_one_batch_keeps_a_change_back_and_drops_only_the_repeat(db_url: str) -> None:
    """The group-commit writer's single statement: A, B, A of one entity are three events in
    arrival order; an A sent again right after is its redelivery; other entities are apart."""
    now = utcnow()
    a, b = {"id": "a", "name": "A"}, {"id": "a", "name": "B"}
    events = [_new("a", a, at=now), _new("x", {"id": "x"}, at=now), _new("a", b, at=now), _new("a", a, at=now),
              _new("a", a, at=now + timedelta(seconds=1)), _new("x", {"id": "x"}, at=now)]
    stored = await _batch(db_url, events)
    assert [s is not None and s.duplicate for s in stored] == [False, False, False, False, True, True]
    again = await _batch(db_url, [_new("a", a, at=now + timedelta(seconds=2)),  # redelivers the latest A
                                  _new("a", b, at=now + timedelta(seconds=2))])  # B after A: a new event
    assert [s is not None and s.duplicate for s in again] == [True, False]

    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(
                select(InboxEvent.id, InboxEvent.entity_key, InboxEvent.body, InboxEvent.deliveries)
                .order_by(InboxEvent.id)
            )).all()
    finally:
        await engine.dispose()
    by_entity = [(json.loads(body)["name"], n) for _, key, body, n in rows if key == "tag:a"]
    assert by_entity == [("A", 1), ("B", 1), ("A", 3), ("B", 1)]
    assert [n for _, key, _, n in rows if key == "tag:x"] == [2]
    ids = [s.id for s in stored if s is not None and s.id is not None]
    assert ids[0] < ids[2] < ids[3]  # one entity's events get ids in arrival order


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_racing_copies_of_one_delivery_are_stored_once(db_url: str) -> None:
    """Two writers (two instances, or two flushers) store copies of the same deliveries at
    the same moment: whichever way they interleave, each delivery is one row counting two."""
    engine = create_engine(db_url)
    now = utcnow()
    try:
        async def writer() -> list[inbox.Stored | None]:
            async with engine.connect() as conn:
                out: list[inbox.Stored | None] = []
                for n in range(20):
                    out += await inbox.store_batch(conn, [_new(f"e{n}", {"id": f"e{n}", "v": n}, at=now)])
                    await conn.commit()
                return out

        first, second = await asyncio.gather(writer(), writer())
        for one, other in zip(first, second, strict=True):
            assert one is not None
            assert other is not None
            assert sorted([one.duplicate, other.duplicate]) == [False, True]
        async with engine.connect() as conn:
            counts = (await conn.execute(select(InboxEvent.deliveries))).scalars().all()
        assert counts == [2] * 20
    finally:
        await engine.dispose()


async def test_custom_sources_enforce_their_id_rules_and_store_nothing_otherwise(uw: AddonHarness) -> None:
    """docs/custom-webhooks.md, "Id rules": the source id, `webhook-id` and event type."""
    created = await uw.client.post("/api/custom-sources", json={"name": "shop"},
                                   headers={"X-Addon-Token": uw.user_token(role="OWNER")})
    assert created.status_code == 201, created.text
    source = created.json()
    body = b'{"order": 1}'
    path = f"/webhooks/custom/{source['id']}"
    now = int(time.time())

    def signed(webhook_id: str) -> dict[str, str | bytes]:
        return {"Content-Type": "application/json", **signed_headers(source["secret"], body, now, webhook_id=webhook_id)}

    cases: list[tuple[str, dict[str, str | bytes], int, str]] = [
        (path, signed("m" * 256), 401, "webhook-id header must be 1-255 printable ASCII characters"),
        (path, {**signed("msg_1"), "webhook-id": "msg_\u00e9t\u00e9".encode()}, 401,
         "webhook-id header must be 1-255 printable ASCII characters"),
        (path, {**signed("msg_1"), "X-Event-Type": "order paid!"}, 400, "X-Event-Type must be 1-64"),
        (f"/webhooks/custom/{'f' * 5000}", signed("msg_1"), 404, "no such custom webhook source"),
    ]
    for route, headers, status, reason in cases:
        r = await uw.client.post(route, content=body, headers=headers)
        assert r.status_code == status, (reason, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["detail"].startswith(reason), r.json()
    async with uw.runtime.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(InboxEvent).where(InboxEvent.source == "custom")) == 0
    ok = await uw.client.post(path, content=body, headers={**signed("m" * 255), "X-Event-Type": "order.paid"})
    assert ok.status_code == 200, ok.text
