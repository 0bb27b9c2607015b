"""The pure parts of sync: windows, report normalisation, endpoint choice, the schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api_studio.app import PROFILE as STUDIO
from clockify_addon.app import PROFILE as ADDON
from clockify_core.config import SyncConfig
from clockify_core.installations.models import Installation
from clockify_core.mirror.mapping import row_values
from clockify_core.openapi import bundled_index
from clockify_core.sync.endpoints import items_path, kind_for, reference_endpoints
from clockify_core.sync.normalize import report_entry
from clockify_core.sync.scheduler import next_run
from clockify_core.sync.timeentries import merge_days, windows


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("month", [("2024-01-15", "2024-02-01"), ("2024-02-01", "2024-03-01"), ("2024-03-01", "2024-03-10")]),
        ("year", [("2024-01-15", "2024-03-10")]),
        ("week", [("2024-02-26", "2024-03-04"), ("2024-03-04", "2024-03-05")]),
    ],
)
def test_windows_cut_at_calendar_boundaries(unit: str, expected: list[tuple[str, str]]) -> None:
    start, end = (at("2024-01-15"), at("2024-03-10")) if unit != "week" else (at("2024-02-26"), at("2024-03-05"))
    assert windows(start, end, unit) == [(at(a), at(b)) for a, b in expected]  # type: ignore[arg-type]
    assert windows(end, end, "day") == []


def test_days_merge_into_ranges() -> None:
    days = [at("2024-03-02T10:00"), at("2024-03-01T23:59"), at("2024-03-02T01:00"), at("2024-03-05T00:00")]
    assert merge_days(days) == [(at("2024-03-01"), at("2024-03-03")), (at("2024-03-05"), at("2024-03-06"))]


def test_a_report_row_maps_like_the_api_entry() -> None:
    api = {
        "id": "e1", "description": "Review", "tagIds": ["t1"], "userId": "u1", "billable": True, "taskId": None,
        "projectId": "p1", "workspaceId": "w", "type": "REGULAR", "isLocked": True,
        "timeInterval": {"start": "2024-01-01T08:00:00Z", "end": "2024-01-01T09:30:00Z", "duration": "PT1H30M"},
        "customFieldValues": [{"customFieldId": "f1", "timeEntryId": "e1", "value": "A", "name": "Loc", "type": "TXT"}],
        "hourlyRate": {"amount": 5000, "currency": "EUR"}, "costRate": {"amount": 3000, "currency": "EUR"},
    }
    report = {
        "_id": "e1", "description": "Review", "userId": "u1", "billable": True, "projectId": "p1", "taskId": None,
        "tags": [{"id": "t1", "name": "x"}], "type": "REGULAR", "locked": True, "currency": "EUR",
        "timeInterval": {"start": "2024-01-01T10:00:00+02:00", "end": "2024-01-01T11:30:00+02:00", "duration": 5400},
        "customFields": [{"customFieldId": "f1", "name": "Loc", "type": "TXT", "value": "A"}],
        "rate": 5000, "costRate": 3000, "amount": 7500, "userName": "Ann",
    }
    normalised = report_entry(report, "w")
    assert normalised["timeInterval"] == api["timeInterval"]
    mapped = row_values("time_entry", "w", "e1", normalised)
    expected = row_values("time_entry", "w", "e1", api)
    assert {k: v for k, v in mapped.items() if k != "raw"} == {k: v for k, v in expected.items() if k != "raw"}


def test_report_rows_keep_api_nulls() -> None:
    running = report_entry({"_id": "e2", "userId": "u", "billable": False, "projectId": None, "rate": 0,
                            "costRate": 0, "timeInterval": {"start": "2024-01-01T08:00:00Z", "end": None,
                                                            "duration": 0}}, "w")
    assert running["timeInterval"] == {"start": "2024-01-01T08:00:00Z", "end": None, "duration": None}
    assert running["hourlyRate"] is None
    assert running["costRate"] is None
    free = report_entry({"_id": "e3", "billable": True, "projectId": "p", "rate": 0, "currency": "USD",
                         "timeInterval": {"start": "2024-01-01T08:00:00Z", "end": "2024-01-01T08:00:05Z"}}, "w")
    assert free["hourlyRate"] == {"amount": 0, "currency": "USD"}  # billable on a free project: the API says 0
    assert free["timeInterval"]["duration"] == "PT5S"


def test_endpoints_follow_scopes_and_settings() -> None:
    index = bundled_index()
    expenses = index.by_operation_id("getExpenses")
    assert expenses is not None
    assert items_path(index, expenses) == ("expenses", "expenses")
    assert kind_for(expenses) == "expense"
    addon = {e.kind for e in reference_endpoints(ADDON, SyncConfig())}
    assert {"user", "project", "client", "tag", "task", "user_group", "custom_field", "expense", "invoice"} <= addon
    studio = {e.kind for e in reference_endpoints(STUDIO, SyncConfig())}
    assert studio == {"user", "project", "client", "tag", "task", "user_group", "custom_field"}
    light = {e.kind for e in reference_endpoints(ADDON, SyncConfig(heavy_endpoints=False, skip_operations=["getTags"]))}
    assert "expense" not in light
    assert "tag" not in light
    assert "project" in light
    ordered = [e.kind for e in reference_endpoints(ADDON, SyncConfig())]
    assert ordered.index("project") < ordered.index("task")


def test_next_run_takes_the_sooner_of_interval_and_daily_times() -> None:
    installation = Installation(workspace_id="w", addon_id="a", settings=[
        {"id": "sync_interval_minutes", "name": "x", "value": 600}, {"id": "sync_enabled", "name": "x", "value": True},
    ])
    now = at("2025-01-01T12:00")
    config = SyncConfig(daily_times=["02:30", "14:00"])
    assert next_run(config, installation, now) == at("2025-01-01T14:00")
    assert next_run(SyncConfig(daily_times=["02:30"]), installation, now) == now + timedelta(minutes=600)
    assert next_run(SyncConfig(daily_times=["11:00"], interval_minutes=15),
                    Installation(workspace_id="w", addon_id="a", settings=[
                        {"id": "sync_interval_minutes", "name": "x", "value": 0}]), now) == at("2025-01-02T11:00")
    with pytest.raises(ValueError, match="HH:MM"):
        SyncConfig(daily_times=["25:00"])
