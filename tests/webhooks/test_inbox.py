"""The inbox on both databases: dedup, claiming, ordering, leases, retries, dead letters."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import clockify_addon.app
import clockify_addon.settings
from clockify_core.db import create_engine, create_session_factory
from clockify_core.db.base import utcnow
from clockify_core.db.queue import backoff_seconds
from clockify_core.installations.models import Installation
from clockify_core.mirror.models import TimeEntry
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import installed_addon
from clockify_core.webhooks import inbox
from clockify_core.webhooks.models import InboxEvent
from tests.lifecycle.test_hardening import clockify_tokens, send_webhook

WS = "ws-inbox"


@pytest.fixture
async def sessions(db_url: str) -> async_sessionmaker[AsyncSession]:
    engine = create_engine(db_url)
    factory = create_session_factory(engine)
    async with factory.begin() as s:
        s.add(Installation(workspace_id=WS, addon_id="addon-1", status="ACTIVE"))
        s.add(Installation(workspace_id="ws-paused", addon_id="addon-2", status="INACTIVE"))
    yield factory
    await engine.dispose()


async def _store(sessions: async_sessionmaker[AsyncSession], body: bytes, *, ws: str = WS, entity: str | None = None,
                 event: str = "NEW_TAG", **kw: object) -> inbox.Stored:
    async with sessions.begin() as s:
        return await inbox.store_event(s, workspace_id=ws, event_type=event, body=body, entity_key=entity, **kw)


async def test_redelivery_is_stored_once_within_the_window(sessions: async_sessionmaker[AsyncSession]) -> None:
    first = await _store(sessions, b'{"id":"t1"}')
    again = await _store(sessions, b'{"id":"t1"}')
    other_event = await _store(sessions, b'{"id":"t1"}', event="TAG_UPDATED")
    assert first.id is not None
    assert not first.duplicate
    assert again == inbox.Stored(id=None, duplicate=True)
    assert other_event.id is not None
    async with sessions() as s:
        row = await s.get(InboxEvent, first.id)
        assert row is not None
        assert row.deliveries == 2


async def test_equal_body_after_the_window_is_a_new_event(sessions: async_sessionmaker[AsyncSession]) -> None:
    now = utcnow()
    first = await _store(sessions, b'{"id":"t2"}', now=now, window=60)
    # Within the window after the first delivery: a redelivery, counted on the first row.
    assert (await _store(sessions, b'{"id":"t2"}', now=now + timedelta(seconds=59), window=60)).duplicate
    later = await _store(sessions, b'{"id":"t2"}', now=now + timedelta(seconds=61), window=60)
    assert first.id is not None
    assert later.id is not None
    assert later.id != first.id
    async with sessions() as s:
        assert [r.deliveries for r in (await s.execute(select(InboxEvent).order_by(InboxEvent.id))).scalars()] == [2, 1]


async def test_a_named_delivery_is_stored_once_whatever_the_body_or_time(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = utcnow()
    named = {"source": "custom", "source_ref": "src-1", "delivery_id": "msg_1"}
    first = await _store(sessions, b'{"v":1}', now=now, **named)
    retry = await _store(sessions, b'{"v":2}', event="OTHER", now=now + timedelta(days=3), **named)
    other_source = await _store(sessions, b'{"v":1}', now=now, **{**named, "source_ref": "src-2"})
    other_id = await _store(sessions, b'{"v":1}', now=now, **{**named, "delivery_id": "msg_2"})
    unnamed = await _store(sessions, b'{"v":1}', event="NEW_TAG", now=now)
    assert first.id is not None
    assert retry == inbox.Stored(id=None, duplicate=True)
    assert None not in (other_source.id, other_id.id, unnamed.id)
    async with sessions() as s:
        row = await s.get(InboxEvent, first.id)
        assert row is not None
        assert (row.body, row.deliveries) == ('{"v":1}', 2)


async def test_claim_finish_and_per_entity_order(sessions: async_sessionmaker[AsyncSession]) -> None:
    a1 = (await _store(sessions, b'{"id":"a","v":1}', entity="tag:a")).id
    a2 = (await _store(sessions, b'{"id":"a","v":2}', entity="tag:a")).id
    b1 = (await _store(sessions, b'{"id":"b","v":1}', entity="tag:b")).id
    paused = (await _store(sessions, b'{"id":"c"}', ws="ws-paused", entity="tag:c")).id
    async with sessions.begin() as s:
        claimed = await inbox.claim(s, worker_id="w1", limit=10, lease_seconds=30)
    assert [e.id for e in claimed] == [a1, b1]  # a2 waits for a1; paused workspaces wait
    assert claimed[0].body == {"id": "a", "v": 1}
    assert claimed[0].attempts == 1
    async with sessions.begin() as s:
        assert await inbox.finish(s, a1, worker_id="w1")
        assert not await inbox.finish(s, b1, worker_id="someone-else")
    async with sessions.begin() as s:
        assert [e.id for e in await inbox.claim(s, worker_id="w1", limit=10, lease_seconds=30)] == [a2]
    async with sessions() as s:
        assert (await s.get(InboxEvent, paused)).status == "PENDING"


async def test_expired_lease_is_reclaimed(sessions: async_sessionmaker[AsyncSession]) -> None:
    event_id = (await _store(sessions, b'{"id":"x"}', entity="tag:x")).id
    async with sessions.begin() as s:
        assert [e.id for e in await inbox.claim(s, worker_id="dead-worker", limit=5, lease_seconds=5)] == [event_id]
    async with sessions.begin() as s:
        assert await inbox.claim(s, worker_id="w2", limit=5, lease_seconds=5) == []
    async with sessions.begin() as s:
        reclaimed = await inbox.claim(s, worker_id="w2", limit=5, lease_seconds=5, now=utcnow() + timedelta(seconds=6))
    assert [(e.id, e.attempts) for e in reclaimed] == [(event_id, 2)]
    async with sessions.begin() as s:
        assert not await inbox.finish(s, event_id, worker_id="dead-worker")  # its lease is gone
        assert await inbox.finish(s, event_id, worker_id="w2")


async def test_failures_back_off_then_dead_letter_and_replay(sessions: async_sessionmaker[AsyncSession]) -> None:
    event_id = (await _store(sessions, b'{"id":"f"}')).id
    now = utcnow()
    for attempt in (1, 2, 3):
        async with sessions.begin() as s:
            [event] = await inbox.claim(s, worker_id="w", limit=1, lease_seconds=30, now=now)
            assert event.attempts == attempt
            status = await inbox.fail(s, event_id, worker_id="w", attempts=event.attempts, error=f"boom {attempt}",
                                      max_attempts=3, base=1, cap=10, now=now)
        async with sessions() as s:
            row = await s.get(InboxEvent, event_id)
            if attempt < 3:
                assert status == "PENDING"
                assert row.next_attempt_at > now
                async with sessions.begin() as s2:  # not due yet
                    assert await inbox.claim(s2, worker_id="w", limit=1, lease_seconds=30, now=now) == []
                now = row.next_attempt_at
            else:
                assert status == "DEAD"
                assert row.last_error == "boom 3"
    async with sessions.begin() as s:
        assert (await inbox.depth(s))["DEAD"] == 1
        assert await inbox.replay_dead(s, workspace_id=WS) == 1
    async with sessions.begin() as s:
        [event] = await inbox.claim(s, worker_id="w", limit=1, lease_seconds=30)
        assert event.attempts == 1


async def test_backoff_grows_and_is_capped() -> None:
    values = [backoff_seconds(n, base=2, cap=60) for n in range(1, 10)]
    assert 1 <= values[0] <= 2
    assert 60 / 2 <= values[-1] <= 60


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_concurrent_claimers_never_share_an_event(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as s:
        for i in range(300):
            await inbox.store_event(s, workspace_id=WS, event_type="NEW_TAG", body=f'{{"id":"{i}"}}'.encode(),
                                    entity_key=f"tag:{i}")

    async def worker(name: str) -> list[int]:
        got: list[int] = []
        while True:
            async with sessions.begin() as s:
                batch = await inbox.claim(s, worker_id=name, limit=7, lease_seconds=60)
            if not batch:
                return got
            got += [e.id for e in batch]

    results = await asyncio.gather(*(worker(f"w{i}") for i in range(6)))
    everything = [i for r in results for i in r]
    assert len(everything) == 300 == len(set(everything))
    assert sum(1 for r in results if r) > 1
    async with sessions() as s:
        owners = (await s.execute(select(InboxEvent.locked_by).distinct())).scalars().all()
        assert len(owners) > 1


async def test_a_poison_event_is_dead_lettered_listed_and_replayed_over_http(
    simulator: InProcessSimulator, pg_url: str
) -> None:
    """The worker's own path: while the database refuses to mirror an event (here a check
    constraint a DBA added), every attempt fails and it lands in DEAD; the operator API lists
    it, and once the cause is fixed a replay applies it with a fresh attempt budget."""
    operator = {"X-API-Key": "inbox-suite-operator-key-0123456789"}
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url,
        security={"operator_api_key": operator["X-API-Key"]}, mirror={"refetch": "never"},
        worker={"max_attempts": 2, "backoff_base": 0.001, "backoff_max": 0.002},
    ) as addon:
        await addon.process()
        assert addon.installation is not None
        ws = simulator.sim.workspace(addon.workspace_id)
        async with addon.runtime.sessions.begin() as s:
            await s.execute(text(
                "ALTER TABLE time_entries ADD CONSTRAINT no_poison CHECK (description IS DISTINCT FROM 'poison')"
            ))
        body = {"id": "64f0c0ffee00000000000d1e", "workspaceId": ws.id, "userId": ws.owner_id, "description": "poison",
                "timeInterval": {"start": "2025-05-01T08:00:00Z", "end": None, "duration": None}}
        token = clockify_tokens(simulator, addon.installation)["NEW_TIME_ENTRY"]
        assert await send_webhook(addon, "NEW_TIME_ENTRY", token, body) == 200

        async def settle_dead() -> list[dict[str, Any]]:
            for _ in range(200):  # backoff is a millisecond: each round makes the retry due
                await addon.process()
                listed = await addon.client.get("/api/operator/dead-letters", headers=operator,
                                                params={"workspace_id": ws.id})
                assert listed.status_code == 200, listed.text
                if listed.json():
                    return list(listed.json())
                await asyncio.sleep(0.005)
            raise AssertionError("the event never reached the dead letters")

        [dead] = await settle_dead()
        assert (dead["event_type"], dead["status"], dead["attempts"]) == ("NEW_TIME_ENTRY", "DEAD", 2)
        assert "no_poison" in dead["last_error"]
        r = await addon.client.get("/api/operator/dead-letters", headers=operator, params={"workspace_id": "other"})
        assert r.json() == []
        assert (await addon.client.get("/api/operator/dead-letters")).status_code == 401

        async with addon.runtime.sessions.begin() as s:
            await s.execute(text("ALTER TABLE time_entries DROP CONSTRAINT no_poison"))
        r = await addon.client.post("/api/operator/dead-letters/replay", headers=operator, json={"ids": [dead["id"]]})
        assert r.status_code == 200, r.text
        assert r.json() == {"replayed": 1}
        async with addon.runtime.sessions() as s:
            event = await s.get(InboxEvent, dead["id"])
            assert event is not None
            assert (event.status, event.attempts) == ("PENDING", 0)
        await addon.process()
        async with addon.runtime.sessions() as s:
            event = await s.get(InboxEvent, dead["id"])
            entry = await s.get(TimeEntry, (ws.id, body["id"]))
        assert event is not None
        assert event.status == "DONE"
        assert entry is not None
        assert entry.description == "poison"
        listed = await addon.client.get("/api/operator/dead-letters", headers=operator, params={"workspace_id": ws.id})
        assert listed.json() == []
