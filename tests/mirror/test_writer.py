"""Mirror semantics on both databases: every sample applies; deletes, restores, partials, snapshots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clockify_core.catalog import EVENTS
from clockify_core.db import create_engine, create_session_factory
from clockify_core.mirror.mapping import TIME_ENTRY_COLUMNS, parse_duration, time_entry_values
from clockify_core.mirror.models import Entity, Project, TimeEntry, User
from clockify_core.mirror.writer import MirrorWriter

SAMPLES = Path(__file__).parents[1] / "fixtures" / "samples"
WS = "5f11791a4e759e12c40733ba"


def sample(event: str) -> dict:
    return json.loads((SAMPLES / f"{event}.json").read_text())


@pytest.fixture
async def sessions(db_url: str) -> async_sessionmaker[AsyncSession]:
    engine = create_engine(db_url)
    yield create_session_factory(engine)
    await engine.dispose()


async def _apply(sessions: async_sessionmaker[AsyncSession], event: str, body: dict, ws: str = WS) -> str | None:
    async with sessions.begin() as s:
        return await MirrorWriter(s).apply_event(ws, EVENTS[event], body)


def test_durations() -> None:
    assert parse_duration("PT1H") == 3600
    assert parse_duration("PT1H30M5S") == 5405
    assert parse_duration("P1DT2H") == 93600
    assert parse_duration("PT0.5S") == 0
    assert parse_duration(90) == 90
    assert parse_duration(None) is None
    assert parse_duration("garbage") is None
    assert parse_duration("P") is None
    # Clockify's whole-number form has its own path; the results are the general pattern's.
    assert parse_duration("PT7H6M25S") == 25585
    assert parse_duration("PT01M") == 60
    assert parse_duration("PT45S") == 45
    assert parse_duration("PT") == 0
    assert parse_duration(" PT1H ") == 3600
    assert parse_duration("PT999999999H") is None  # past the column's range
    assert parse_duration("PT1H1H") is None
    assert parse_duration("PTH") is None


def test_time_entry_json_columns_as_text_for_copy() -> None:
    body = {"id": "e1", "userId": "u1", "tagIds": ["t1", 3, "t2"], "description": "",
            "timeInterval": {"start": "2024-01-01T08:00:00Z", "end": "2024-01-01T09:30:00+00:00", "duration": None},
            "customFieldValues": [{"customFieldId": "f", "name": "N", "value": "v", "timeEntryId": "e1"}, "odd"],
            "hourlyRate": {"amount": 100, "currency": "EUR"}, "costRate": None}
    values = time_entry_values(body)
    assert values[TIME_ENTRY_COLUMNS.index("tag_ids")] == ["t1", "t2"]
    assert values[TIME_ENTRY_COLUMNS.index("duration_seconds")] == 5400
    assert values[TIME_ENTRY_COLUMNS.index("description")] is None
    assert values[TIME_ENTRY_COLUMNS.index("currency")] == "EUR"
    as_text = time_entry_values(body, json_text=True)
    for i, column in enumerate(TIME_ENTRY_COLUMNS):
        if column in ("tag_ids", "custom_fields"):
            assert json.loads(as_text[i]) == values[i]
        else:
            assert as_text[i] == values[i]
    empty = time_entry_values({"id": "e2"}, json_text=True)
    assert (empty[TIME_ENTRY_COLUMNS.index("tag_ids")], empty[TIME_ENTRY_COLUMNS.index("custom_fields")]) == ("[]", "[]")


async def test_every_sample_applies(sessions: async_sessionmaker[AsyncSession]) -> None:
    names = sorted(p.stem for p in SAMPLES.glob("*.json"))
    assert len(names) == 49
    assert set(names) <= set(EVENTS)
    for name in names:
        assert await _apply(sessions, name, sample(name)) is not None, name


async def test_time_entry_columns(sessions: async_sessionmaker[AsyncSession]) -> None:
    body = sample("NEW_TIME_ENTRY")
    await _apply(sessions, "NEW_TIME_ENTRY", body)
    async with sessions() as s:
        row = await s.get(TimeEntry, (WS, body["id"]))
    assert row is not None
    assert (row.user_id, row.project_id, row.task_id) == (body["userId"], body["projectId"], body["taskId"])
    assert row.duration_seconds == 3600
    assert row.billable is True
    assert row.is_locked is False
    assert row.start_at.isoformat() == "2020-07-17T11:35:01+00:00"
    assert row.end_at is not None
    assert row.tag_ids == body["tagIds"]
    assert row.custom_fields[0]["value"] == "Custom field test value"
    assert row.raw == body
    assert row.written_by == "webhook"
    assert row.last_event == "NEW_TIME_ENTRY"
    assert row.deleted_at is None


async def test_late_new_does_not_overwrite_and_late_update_does_not_resurrect(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    body = sample("NEW_TIME_ENTRY")
    updated = {**body, "description": "edited"}
    await _apply(sessions, "TIME_ENTRY_UPDATED", updated)
    await _apply(sessions, "NEW_TIME_ENTRY", body)  # arrives late: stale
    async with sessions() as s:
        assert (await s.get(TimeEntry, (WS, body["id"]))).description == "edited"

    await _apply(sessions, "TIME_ENTRY_DELETED", updated)
    await _apply(sessions, "TIME_ENTRY_UPDATED", {**body, "description": "too late"})
    async with sessions() as s:
        row = await s.get(TimeEntry, (WS, body["id"]))
        assert row.deleted_at is not None
        assert row.description == "too late"

    await _apply(sessions, "TIME_ENTRY_RESTORED", {**body, "description": "back"})
    async with sessions() as s:
        row = await s.get(TimeEntry, (WS, body["id"]))
        assert row.deleted_at is None
        assert row.description == "back"


async def test_delete_with_id_only_body_keeps_content(sessions: async_sessionmaker[AsyncSession]) -> None:
    created = sample("EXPENSE_CREATED")
    await _apply(sessions, "EXPENSE_CREATED", created)
    await _apply(sessions, "EXPENSE_DELETED", {"workspaceId": WS, "expenseId": created["id"]})
    async with sessions() as s:
        row = await s.get(Entity, (WS, "expense", created["id"]))
    assert row is not None
    assert row.deleted_at is not None
    assert row.raw["total"] == 220000


async def test_partial_user_updates_merge(sessions: async_sessionmaker[AsyncSession]) -> None:
    joined = sample("USER_JOINED_WORKSPACE")
    await _apply(sessions, "USER_JOINED_WORKSPACE", joined)
    await _apply(sessions, "USER_EMAIL_CHANGED", {"id": joined["id"], "email": "new@example.com", "name": joined["name"],
                                                  "oldEmail": joined["email"]})
    async with sessions() as s:
        row = await s.get(User, (WS, joined["id"]))
    assert row.email == "new@example.com"
    assert row.time_zone == "Europe/Belgrade"
    assert row.raw["settings"]["weekStart"] == "MONDAY"


async def test_snapshots_are_the_truth(sessions: async_sessionmaker[AsyncSession]) -> None:
    project = sample("NEW_PROJECT")
    await _apply(sessions, "PROJECT_DELETED", project)
    async with sessions.begin() as s:
        await MirrorWriter(s).apply_snapshot(WS, "project", project["id"], {**project, "name": "alive"})
    async with sessions() as s:
        row = await s.get(Project, (WS, project["id"]))
        assert row.deleted_at is None
        assert row.name == "alive"
        assert row.written_by == "refetch"
    async with sessions.begin() as s:
        await MirrorWriter(s).apply_snapshot(WS, "project", project["id"], None)
    async with sessions() as s:
        assert (await s.get(Project, (WS, project["id"]))).deleted_at is not None


async def test_bulk_snapshots_and_purge(sessions: async_sessionmaker[AsyncSession]) -> None:
    base = sample("NEW_TIME_ENTRY")
    bodies = [{**base, "id": f"te{i:04d}", "description": f"d{i}"} for i in range(250)]
    async with sessions.begin() as s:
        assert await MirrorWriter(s).upsert_snapshots("time_entry", WS, bodies, written_by="bootstrap") == 250
        assert await MirrorWriter(s).upsert_snapshots("time_entry", "other-ws", bodies[:5], written_by="sync") == 5
    async with sessions.begin() as s:
        assert await MirrorWriter(s).mark_deleted("time_entry", WS, ["te0001", "missing"], written_by="sync") == 1
    async with sessions() as s:
        count = await s.scalar(select(func.count()).select_from(TimeEntry).where(TimeEntry.workspace_id == WS))
        assert count == 250
    async with sessions.begin() as s:
        assert await MirrorWriter(s).purge_workspace(WS) == 250
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(TimeEntry)) == 5
