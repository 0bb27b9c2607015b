"""Compact storage for time entries: one ``array`` per column, strings interned.

A million entries take about 60 bytes each (see docs/benchmarks.md). Rows never move:
an id encodes its row, deletion sets a flag, and three sorted row indexes (per user by
start, workspace by start, workspace by last change) answer the queries the API serves.
Entries become dicts only when rendered (``render.py``).
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from clockify_core.simulator.ids import object_id, split

RUNNING = -1
NONE = -1
_ROW_BITS = 24  # rows per workspace stay below 2**24, as the id counter does

F_BILLABLE = 1
F_DELETED = 2
F_LOCKED = 4
F_BREAK = 8

K = TypeVar("K", bound=Hashable)


class Interner(Generic[K]):
    """Values stored once, referenced by index."""

    def __init__(self) -> None:
        self.values: list[K] = []
        self._index: dict[K, int] = {}

    def add(self, value: K) -> int:
        found = self._index.get(value)
        if found is None:
            found = self._index[value] = len(self.values)
            self.values.append(value)
        return found

    def __getitem__(self, index: int) -> K:
        return self.values[index]

    def __len__(self) -> int:
        return len(self.values)


CustomValues = tuple[tuple[int, str], ...]  # (custom field index, value as text)


@dataclass(slots=True)
class EntryFields:
    """One entry, unpacked, for writes."""

    user: int
    start: int
    duration: int
    project: int = NONE
    task: int = NONE
    description: str = ""
    tags: tuple[int, ...] = ()
    custom: CustomValues = ()
    billable: bool = False
    locked: bool = False


class SortedRows:
    """Rows kept in ascending order of ``key(row)``; keys are unique (the row is a tie-break)."""

    def __init__(self, key: Callable[[int], int], rows: Iterable[int] = ()) -> None:
        self.key = key
        self.rows = array("I", rows)

    def insert(self, row: int) -> None:
        self.rows.insert(bisect.bisect_left(self.rows, self.key(row), key=self.key), row)

    def remove(self, row: int, old_key: int) -> None:
        at = bisect.bisect_left(self.rows, old_key, key=self.key)
        if at < len(self.rows) and self.rows[at] == row:
            del self.rows[at]

    def span(self, low: int | None, high: int | None) -> tuple[int, int]:
        """Index range of rows with ``low <= key < high``."""
        lo = 0 if low is None else bisect.bisect_left(self.rows, low, key=self.key)
        hi = len(self.rows) if high is None else bisect.bisect_left(self.rows, high, key=self.key)
        return lo, hi

    def __len__(self) -> int:
        return len(self.rows)


class TimeEntryStore:
    """All time entries of one workspace."""

    def __init__(self, workspace_id: str, tag: str) -> None:
        self.workspace_id = workspace_id
        self.tag = tag
        self.start = array("q")
        self.duration = array("i")  # seconds; RUNNING while the timer runs
        self.user = array("H")
        self.project = array("i")
        self.task = array("i")
        self.description = array("I")
        self.tags = array("I")
        self.custom = array("I")
        self.flags = array("B")
        self.created = array("q")
        self.updated = array("q")
        self.descriptions: Interner[str] = Interner()
        self.tag_sets: Interner[tuple[int, ...]] = Interner()
        self.custom_sets: Interner[CustomValues] = Interner()
        self.by_user: dict[int, SortedRows] = {}
        self.by_start = SortedRows(self.start_key)
        self.by_updated = SortedRows(self.updated_key)
        self.running: dict[int, int] = {}  # user index -> row
        self.version = 0  # bumped by every write; report caches key on it
        self.descriptions.add("")
        self.tag_sets.add(())
        self.custom_sets.add(())

    # keys -------------------------------------------------------------------------
    def start_key(self, row: int) -> int:
        return (self.start[row] << _ROW_BITS) | row

    def updated_key(self, row: int) -> int:
        return (self.updated[row] << _ROW_BITS) | row

    # ids ----------------------------------------------------------------------------
    def id_of(self, row: int) -> str:
        return object_id(self.created[row], self.tag, row)

    def row_of(self, entry_id: str) -> int | None:
        """The live row an id names, or None (unknown, other workspace, or deleted)."""
        row = self.any_row_of(entry_id)
        return None if row is None or self.flags[row] & F_DELETED else row

    def any_row_of(self, entry_id: str) -> int | None:
        parts = split(entry_id)
        if parts is None or parts[0] != self.tag or parts[1] >= len(self.start):
            return None
        row = parts[1]
        return row if self.id_of(row) == entry_id.lower() else None

    # reads --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.by_start)

    @property
    def rows_total(self) -> int:
        return len(self.start)

    def end(self, row: int) -> int | None:
        d = self.duration[row]
        return None if d == RUNNING else self.start[row] + d

    def is_billable(self, row: int) -> bool:
        return bool(self.flags[row] & F_BILLABLE)

    def is_deleted(self, row: int) -> bool:
        return bool(self.flags[row] & F_DELETED)

    def fields(self, row: int) -> EntryFields:
        flags = self.flags[row]
        return EntryFields(
            user=self.user[row],
            start=self.start[row],
            duration=self.duration[row],
            project=self.project[row],
            task=self.task[row],
            description=self.descriptions[self.description[row]],
            tags=self.tag_sets[self.tags[row]],
            custom=self.custom_sets[self.custom[row]],
            billable=bool(flags & F_BILLABLE),
            locked=bool(flags & F_LOCKED),
        )

    def user_rows(self, user: int) -> SortedRows:
        rows = self.by_user.get(user)
        if rows is None:
            rows = self.by_user[user] = SortedRows(self.start_key)
        return rows

    def iter_desc(self, index: SortedRows, low: int | None, high: int | None) -> Iterator[int]:
        """Rows with ``low <= start < high`` (seconds), newest first."""
        lo, hi = index.span(None if low is None else low << _ROW_BITS, None if high is None else high << _ROW_BITS)
        rows = index.rows
        for i in range(hi - 1, lo - 1, -1):
            yield rows[i]

    def iter_asc(self, index: SortedRows, low: int | None, high: int | None) -> Iterator[int]:
        lo, hi = index.span(None if low is None else low << _ROW_BITS, None if high is None else high << _ROW_BITS)
        rows = index.rows
        for i in range(lo, hi):
            yield rows[i]

    def updated_between(self, low: int, high: int) -> Iterator[int]:
        lo, hi = self.by_updated.span(low << _ROW_BITS, high << _ROW_BITS)
        rows = self.by_updated.rows
        for i in range(lo, hi):
            yield rows[i]

    # writes -------------------------------------------------------------------------
    def _flags(self, f: EntryFields) -> int:
        return (F_BILLABLE if f.billable else 0) | (F_LOCKED if f.locked else 0)

    def append_raw(self, f: EntryFields, created: int, updated: int) -> int:
        """Add a row without touching the indexes (bulk generation; call ``build_indexes``)."""
        row = len(self.start)
        self.start.append(f.start)
        self.duration.append(f.duration)
        self.user.append(f.user)
        self.project.append(f.project)
        self.task.append(f.task)
        self.description.append(self.descriptions.add(f.description))
        self.tags.append(self.tag_sets.add(f.tags))
        self.custom.append(self.custom_sets.add(f.custom))
        self.flags.append(self._flags(f))
        self.created.append(created)
        self.updated.append(updated)
        return row

    def build_indexes(self) -> None:
        live = [r for r in range(len(self.start)) if not self.flags[r] & F_DELETED]
        live.sort(key=self.start_key)
        self.by_start = SortedRows(self.start_key, live)
        per_user: dict[int, list[int]] = {}
        for r in live:
            per_user.setdefault(self.user[r], []).append(r)
        self.by_user = {u: SortedRows(self.start_key, rows) for u, rows in per_user.items()}
        self.by_updated = SortedRows(self.updated_key, sorted(live, key=self.updated_key))
        self.running = {self.user[r]: r for r in live if self.duration[r] == RUNNING}
        self.version += 1

    def _index(self, row: int) -> None:
        self.by_start.insert(row)
        self.user_rows(self.user[row]).insert(row)
        self.by_updated.insert(row)
        if self.duration[row] == RUNNING:
            self.running[self.user[row]] = row

    def _unindex(self, row: int) -> None:
        self.by_start.remove(row, self.start_key(row))
        self.user_rows(self.user[row]).remove(row, self.start_key(row))
        self.by_updated.remove(row, self.updated_key(row))
        if self.running.get(self.user[row]) == row:
            del self.running[self.user[row]]

    def add(self, f: EntryFields, now: int) -> int:
        if len(self.start) >= 1 << _ROW_BITS:
            raise OverflowError("workspace is full")
        row = self.append_raw(f, now, now)
        self._index(row)
        self.version += 1
        return row

    def replace(self, row: int, f: EntryFields, now: int) -> None:
        self._unindex(row)
        self.start[row] = f.start
        self.duration[row] = f.duration
        self.user[row] = f.user
        self.project[row] = f.project
        self.task[row] = f.task
        self.description[row] = self.descriptions.add(f.description)
        self.tags[row] = self.tag_sets.add(f.tags)
        self.custom[row] = self.custom_sets.add(f.custom)
        self.flags[row] = self._flags(f) | (self.flags[row] & F_BREAK)
        self.updated[row] = max(now, self.updated[row])
        self._index(row)
        self.version += 1

    def delete(self, row: int, now: int) -> None:
        self._unindex(row)
        self.flags[row] |= F_DELETED
        self.updated[row] = max(now, self.updated[row])
        self.version += 1

    def restore(self, row: int, now: int) -> None:
        self.flags[row] &= ~F_DELETED & 0xFF
        self.updated[row] = max(now, self.updated[row])
        self._index(row)
        self.version += 1

    def nbytes(self) -> int:
        cols = (self.start, self.duration, self.user, self.project, self.task, self.description,
                self.tags, self.custom, self.flags, self.created, self.updated, self.by_start.rows,
                self.by_updated.rows)
        total = sum(c.itemsize * len(c) for c in cols)
        return total + sum(r.rows.itemsize * len(r.rows) for r in self.by_user.values())
