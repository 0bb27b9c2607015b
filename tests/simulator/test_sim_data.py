"""Generated data: deterministic under a seed, realistic in shape, compact in storage."""

from __future__ import annotations

import json
from pathlib import Path

from clockify_core.simulator import DataScale
from clockify_core.simulator.entries import RUNNING
from clockify_core.simulator.generate import generate_workspace
from clockify_core.simulator.model import ts
from clockify_core.simulator.render import time_entry, time_entry_webhook
from clockify_core.simulator.testing import TEST_ANCHOR

SCALE = DataScale(workspaces=1, users=8, projects=10, time_entries=3000, years=2, running_timers=2)
ANCHOR = ts(TEST_ANCHOR)


def _snapshot(seed: int) -> list[dict[str, object]]:
    ws = generate_workspace(seed, 0, SCALE, ANCHOR)
    return [time_entry(ws, row, hydrated=True) for row in range(ws.entries.rows_total)] + [
        ws.projects, ws.users, ws.tags, ws.clients, ws.tasks]  # type: ignore[list-item]


def test_same_seed_gives_the_same_ids_and_bodies() -> None:
    assert _snapshot(11) == _snapshot(11)


def test_a_different_seed_gives_different_data() -> None:
    a, b = _snapshot(11), _snapshot(12)
    assert a != b
    assert {e["id"] for e in a[:-5]}.isdisjoint({e["id"] for e in b[:-5]})  # type: ignore[index]


def test_shape_is_realistic() -> None:
    ws = generate_workspace(3, 0, SCALE, ANCHOR)
    store = ws.entries
    assert store.rows_total == SCALE.time_entries + SCALE.running_timers
    assert len(store.running) == 2
    for row in store.running.values():
        assert store.duration[row] == RUNNING
        assert ANCHOR - 4 * 3600 <= store.start[row] < ANCHOR
    bodies = [time_entry(ws, r) for r in store.by_start.rows]
    billable = sum(b["billable"] for b in bodies) / len(bodies)
    assert 0.2 < billable < 0.9
    assert any(b["tagIds"] for b in bodies)
    assert any(not b["tagIds"] for b in bodies)
    assert any(b["taskId"] for b in bodies)
    assert any(b["customFieldValues"] for b in bodies)
    assert len({b["description"] for b in bodies}) > 200
    years = {b["timeInterval"]["start"][:4] for b in bodies}
    assert len(years) >= 2
    assert all(len(b["id"]) == 24 and int(b["id"], 16) >= 0 for b in bodies)
    assert ws.deletions or SCALE.deleted_fraction * SCALE.time_entries < 20


def test_ids_resolve_to_rows_and_reject_strangers() -> None:
    ws = generate_workspace(3, 0, SCALE, ANCHOR)
    other = generate_workspace(3, 1, SCALE, ANCHOR)
    store = ws.entries
    row = store.by_start.rows[100]
    assert store.row_of(store.id_of(row)) == row
    assert store.row_of(other.entries.id_of(row)) is None
    assert store.row_of("not-an-id") is None
    assert store.row_of("f" * 24) is None


def test_webhook_body_has_the_sample_keys() -> None:
    sample = json.loads((Path(__file__).parents[1] / "fixtures/samples/NEW_TIME_ENTRY.json").read_text())
    ws = generate_workspace(3, 0, SCALE, ANCHOR)
    row = next(r for r in ws.entries.by_start.rows if ws.entries.task[r] >= 0 and ws.entries.custom[r])
    body = time_entry_webhook(ws, row)
    assert list(body) == list(sample)
    assert set(body["project"]) == set(sample["project"])
    assert set(body["task"]) == set(sample["task"])
    assert set(body["user"]) == set(sample["user"])
    assert set(body["customFieldValues"][0]) == set(sample["customFieldValues"][0])


def test_storage_is_compact() -> None:
    ws = generate_workspace(3, 0, DataScale(workspaces=1, time_entries=20_000), ANCHOR)
    per_entry = ws.entries.nbytes() / ws.entries.rows_total
    assert per_entry < 80
